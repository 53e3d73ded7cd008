"""The claim catalog: docs/design-claims.md parsed, and the source tree whose tests are the checks.

The catalog is one table row per claim (``| `id` | § | claim | where it is checked | design vs found |``)
under ``## §N title`` headings. ``jedisos-db verify`` reports a verdict for every row, so the page is
parsed here, once; ``tests/test_design_claims.py`` keeps it honest with the same parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from jedisos_db.runtime.errors import ConfigError, InvalidInputError

CATALOG = Path("docs") / "design-claims.md"
"""The catalog, relative to the source tree."""
TESTS = Path("tests")
NOT_CHECKED = "not yet checked"
GET_SOURCE = ("clone the jedisos-db repository and run `pip install -e '.[verify]'` in it (or pass --source DIR, "
              "a checkout: verify runs its tests/ and reads its docs/design-claims.md)")

_ROW = re.compile(r"^\|\s*`(?P<id>[^`]+)`\s*\|(?P<rest>.*)\|\s*$")
_HEADING = re.compile(r"^##\s+§(?P<section>\d+)\s+(?P<title>.+?)\s*$")
_NODE = re.compile(r"`(?P<node>tests/[^`]+?\.py::[^`]+)`(?P<e2e>\s*\*\(e2e\)\*)?")


@dataclass(frozen=True)
class Claim:
    """One row of the catalog: ``where`` and ``found`` are its last two cells as written."""

    id: str
    section: str
    text: str
    where: str
    found: str

    def checks(self) -> list[tuple[str, bool]]:
        """The cited test node ids, each with whether it is listed as e2e."""
        return [(m["node"], bool(m["e2e"])) for m in _NODE.finditer(self.where)]

    def unparsed_where(self) -> str:
        """What the "where it is checked" cell holds besides node ids (empty when it parses)."""
        return _NODE.sub("", self.where).replace("<br>", "").strip()


def parse(text: str) -> list[Claim]:
    """Every claim row of the catalog, in page order. A row with the wrong number of cells is an error."""
    claims = []
    for number, line in enumerate(text.splitlines(), start=1):
        m = _ROW.match(line)
        if m is None:
            continue
        cells = [c.strip() for c in m["rest"].split("|")]
        if len(cells) != 4:
            raise InvalidInputError(f"{CATALOG} line {number}",
                                    f"{m['id']}: expected 5 columns (id, §, claim, where, found), got {len(cells) + 1}")
        claims.append(Claim(m["id"], *cells))
    return claims


def section_titles(text: str) -> dict[str, str]:
    """``{"1": "Overview: one server, ...", ...}`` from the page's ``## §N title`` headings."""
    return {m["section"]: m["title"] for m in map(_HEADING.match, text.splitlines()) if m}


@dataclass(frozen=True)
class Catalog:
    """The parsed page: claims in page order and the section titles."""

    claims: tuple[Claim, ...]
    sections: dict[str, str]

    @classmethod
    def read(cls, source: Path) -> Catalog:
        text = (source / CATALOG).read_text(encoding="utf-8")
        return cls(tuple(parse(text)), section_titles(text))

    def title(self, section: str) -> str:
        return f"§{section} {self.sections.get(section, '')}".rstrip()

    def section_of(self, claim_id: str) -> str | None:
        return next((c.section for c in self.claims if c.id == claim_id), None)


def _is_source(path: Path) -> bool:
    return (path / CATALOG).is_file() and (path / TESTS / "conftest.py").is_file()


def locate_source(given: Path | None = None) -> Path:
    """The source tree verify runs: ``given`` (``--source``), else the checkout this package was installed
    from in editable mode. Raises :class:`ConfigError` with how to get one when there is none."""
    if given is not None:
        path = given.expanduser().resolve()
        if not _is_source(path):
            raise ConfigError("--source", f"{path} holds no {CATALOG} and {TESTS}/conftest.py; {GET_SOURCE}")
        return path
    import jedisos_db

    # An editable install imports the package from <checkout>/src/jedisos_db.
    package = Path(jedisos_db.__file__).resolve().parent
    for candidate in package.parents[:3]:
        if _is_source(candidate):
            return candidate
    raise ConfigError("--source", f"no jedisos-db source tree beside the installed package ({package}); {GET_SOURCE}")
