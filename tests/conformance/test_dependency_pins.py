"""The design's new dependencies (§10 "새 의존성") resolved beside Hindsight's own, by uv's resolver.

The pins are resolved from the package index (PyPI by default, or uv's configured index) together
with the installed ``hindsight-api-slim`` release: once as written, then each at its documented floor,
which is what the pins admit and what an older lock file or a constrained environment would pick.
Needs the index and the Hindsight release (``nox -s e2e``); skips with the reason otherwise.
"""

from __future__ import annotations

import subprocess
from importlib.metadata import PackageNotFoundError, requires, version

import pytest
from packaging.requirements import Requirement
from uv import find_uv_bin

from jedisos_db.harness.verify.plugin import ClaimRecorder

pytestmark = pytest.mark.e2e

DESIGN_PINS = ("sqlalchemy[asyncio]>=2.0.38", "asyncpg>=0.30.0", "alembic>=1.15.2")
"""design §10 "새 의존성 (pyproject.toml에 추가 필요)", verbatim."""
HINDSIGHT = "hindsight-api-slim"
RESOLVE_TIMEOUT = 300


def _hindsight_release() -> str:
    try:
        return version(HINDSIGHT)
    except PackageNotFoundError:
        pytest.skip(f"{HINDSIGHT} is not installed: the release to resolve beside is unknown (nox -s e2e installs it)")


def resolve(requirements: list[str]) -> tuple[bool, str]:
    """``uv pip compile`` of ``requirements`` for Python 3.11: (resolved, the lock or the resolver's reason)."""
    try:
        done = subprocess.run([find_uv_bin(), "pip", "compile", "-", "--python-version", "3.11", "--no-header",
                               "--no-annotate", "--quiet"], input="\n".join(requirements), capture_output=True,
                              text=True, timeout=RESOLVE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip(f"uv pip compile took more than {RESOLVE_TIMEOUT} s: the package index does not answer")
    if done.returncode != 0 and "No solution found" not in done.stderr:
        pytest.skip(f"uv could not reach the package index: {done.stderr.strip().splitlines()[-1:]}")
    return done.returncode == 0, done.stdout if done.returncode == 0 else done.stderr


def _locked(lock: str, name: str) -> str:
    for line in lock.splitlines():
        if line.lower().startswith(f"{name}=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{name} is missing from the resolved lock:\n{lock}")


def _floor(pin: str) -> str:
    """``name==floor`` of a ``name>=floor`` pin (extras kept)."""
    req = Requirement(pin)
    floors = [s.version for s in req.specifier if s.operator == ">="]
    assert len(floors) == 1, f"{pin}: expected one >= floor"
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras}=={floors[0]}"


@pytest.mark.claim("S10-dependency-pins")
def test_the_documented_pins_beside_hindsight(claim: ClaimRecorder) -> None:
    """design §10: the three pins resolve beside hindsight-api-slim as written, and at their floors?"""
    release = _hindsight_release()
    beside = f"{HINDSIGHT}=={release}"
    resolved, lock = resolve([*DESIGN_PINS, beside])
    assert resolved, f"the design's pins as written do not resolve beside {beside}: {lock.strip()}"
    picked = {Requirement(p).name: _locked(lock, Requirement(p).name) for p in DESIGN_PINS}
    conflicts = [floor for floor in map(_floor, DESIGN_PINS) if not resolve([floor, beside])[0]]
    claim.figures(pins=len(DESIGN_PINS), floor_conflicts=len(conflicts),
                  **{f"resolved_{name}": v for name, v in picked.items()})
    resolved_text = ", ".join(f"{n} {v}" for n, v in picked.items())
    if conflicts:
        names = {Requirement(c).name for c in conflicts}
        theirs = [str(r) for r in map(Requirement, requires(HINDSIGHT) or []) if r.name in names and not r.marker]
        claim.partial(f"as written the pins resolve beside {beside} only because the resolver lifts them "
                      f"({resolved_text}); at their documented floors {', '.join(conflicts)} conflict with "
                      f"{HINDSIGHT}'s {', '.join(theirs)}",
                      fix="head requires sqlalchemy[asyncio]>=2.0.44,<2.1 (pyproject.toml), inside Hindsight's range; "
                          "raise the alembic floor likewise")
    else:
        claim.holds(f"the pins resolve beside {beside} as written ({resolved_text}) and at each documented floor")
