"""What a check finds about a claim, and how several checks of one claim make one verdict.

A verdict is about the design document as written: a test that shows a claim false records ``fails``
(and passes); where head fixes the flaw, ``fix`` says how. ``not_run`` always carries its reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from jedisos_db.runtime.errors import InvalidInputError

Verdict = Literal["holds", "fails", "partial", "not_run"]
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)

Figure = int | float | str | bool
Figures = Mapping[str, Figure]


@dataclass(frozen=True)
class Finding:
    """One check's finding about one claim: ``check`` is the test node id (or function) that decided it."""

    claim: str
    verdict: Verdict
    evidence: str
    check: str
    figures: Figures = field(default_factory=dict)
    fix: str | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise InvalidInputError("verdict", f"{self.verdict!r} is not one of {', '.join(VERDICTS)}")
        if not self.evidence.strip():
            raise InvalidInputError("evidence", f"empty for {self.claim} from {self.check}")


@dataclass(frozen=True)
class ClaimVerdict:
    """All checks of one claim combined: the verdict the ledger reports."""

    claim: str
    verdict: Verdict
    evidence: str
    checks: tuple[str, ...]
    figures: Figures
    fix: str | None


def combine(claim: str, findings: Iterable[Finding]) -> ClaimVerdict:
    """One verdict from the findings of every check that ran.

    Checks that did not run are left out while any other ran; all agreeing gives their verdict; a
    claim some checks confirm and others refute, or any ``partial``, is ``partial``. The evidence
    leads with what decided it: the refutations first, then the partial findings, then the rest.
    """
    found = [f for f in findings if f.claim == claim]
    if not found:
        return ClaimVerdict(claim, "not_run", "no check of this claim ran", (), {}, None)
    ran = [f for f in found if f.verdict != "not_run"] or found
    kinds = {f.verdict for f in ran}
    verdict: Verdict = kinds.pop() if len(kinds) == 1 else "partial"
    order = {"fails": 0, "partial": 1, "holds": 2, "not_run": 3}
    ran.sort(key=lambda f: order[f.verdict])
    figures: dict[str, Figure] = {}
    for f in ran:
        figures.update(f.figures)
    fixes = [f.fix for f in ran if f.fix]
    evidence = " ".join(dict.fromkeys(f.evidence.rstrip(".") + "." for f in ran))
    return ClaimVerdict(claim, verdict, evidence, tuple(f.check for f in ran), figures,
                        " ".join(dict.fromkeys(fixes)) or None)
