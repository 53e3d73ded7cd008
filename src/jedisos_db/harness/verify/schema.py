"""The published schema of ``verdicts.json`` (schemas/verdicts.schema.json, JSON Schema 2020-12), and a check.

    python -m jedisos_db.harness.verify.schema reports/verify/verdicts.json   # CI: exit 1 with the first error
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from jedisos_db.runtime.errors import InvalidInputError

from .claims import locate_source

SCHEMA = Path("schemas") / "verdicts.schema.json"
"""The schema, relative to the source tree."""


def load(source: Path | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((locate_source(source) / SCHEMA).read_text(encoding="utf-8"))
    return schema


def validate(document: Any, source: Path | None = None) -> None:
    """Raise :class:`InvalidInputError` naming the first place ``document`` breaks the schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load(source), format_checker=jsonschema.FormatChecker())
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise InvalidInputError(f"verdicts.json {where}", error.message)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m jedisos_db.harness.verify.schema VERDICTS_JSON", file=sys.stderr)
        return 2
    path = Path(argv[0])
    try:
        validate(json.loads(path.read_text(encoding="utf-8")))
    except (InvalidInputError, OSError, ValueError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: valid against {SCHEMA}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
