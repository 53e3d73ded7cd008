"""``verify``: run the claim-marked tests on a real server and write the ledger of verdicts.

The checks are the test suite (one source of truth): pytest runs in this process over the tests marked
``claim``, on the ``--dsn`` admin server or on a private embedded server started here with the design's
settings, and the claim plugin's findings are combined into one verdict per claim of the catalog
(docs/design-claims.md). pytest's own output goes to ``out_dir/pytest.log``; the caller sees progress
through a callback, one stage at a time: the server, each design section's checks, the report.

With ``designs=`` (``jedisos-db verify --design A --design B``) the same checks run once per design, with
the suite's ``--design`` option (its template database built by that design), and then every measurement
of :data:`jedisos_db.harness.measure.registry.MEASUREMENTS` runs on the design's server. Without ``--dsn``
each design gets a private embedded server started with its own ``max_connections`` and
``superuser_reserved_connections`` (designs that agree on them share one), so a connection budget is
measured against the server the design deploys; on a ``--dsn`` server whose settings differ, the design's
``server.note`` says so. A design that gives Hindsight a server of its own (``[hindsight] placement =
"own-server"``) gets a second embedded server started with its ``[hindsight] max_connections`` (or the
``hindsight_target`` server given), on which the checks put Hindsight's databases (the suite's
``--test-hindsight-dsn``) and the measurements count its budget; it is stopped and removed after that design.
The ledger describes it as the design's ``server.hindsight``. On a ``--dsn`` run without ``hindsight_target``
none is started, and ``server.hindsight.note`` says the checks ran Hindsight on the main server and its budget
is computed, not measured. A measurement that raises is that design's "not measured: <why>", never the end of
the run. Each design's pytest output goes to ``out_dir/pytest-<design>.log``.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import pytest

import jedisos_db
from jedisos_db.ops import hindsight as hindsight_ops
from jedisos_db.ops import provision
from jedisos_db.runtime import urls
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import ConfigError, JedisosDBError, LocalServerError
from jedisos_db.runtime.urls import DatabaseURL

from . import plugin
from .claims import NOT_CHECKED, Catalog, locate_source
from .verdicts import Figure, Finding, Verdict, combine

if TYPE_CHECKING:
    from jedisos_db.harness.designs import Design
    from jedisos_db.harness.measure import Measured

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called when a stage starts (done 0) and as it advances."""

DESIGN = "documented"
"""The design judged: the document as written (its DDL = revisions 001–006, its SQL, snippets, settings)."""
STAGE_SERVER = "server"
STAGE_REPORT = "report"
QUICK_LEFT_OUT = ("e2e", "slow")
QUICK_REASON = "left out by --quick; run without --quick"
REPORTED_SETTINGS = ("max_connections", "shared_buffers", "work_mem", "maintenance_work_mem", "effective_cache_size",
                     "fsync", "synchronous_commit", "max_wal_size", "jit", "shared_preload_libraries",
                     "superuser_reserved_connections")
# pytest exit codes after which the run still judged what it collected: all passed, some failed (findings),
# no claim-marked test collected (every claim not_run).
_COMPLETED = {pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED}
_SECTION = re.compile(r"^S(\d+)-")
PRIVATE_SERVER_ENV = "JEDISOS_TEST_DSN_PRIVATE"
"""Set (to 1) while the checks run on the embedded server verify started: the suite judges it as the embedded
server and leaves its databases to the server's removal (an environment variable, not an option, so that a
``--source`` tree that does not know it still runs)."""


HINDSIGHT_SERVER_ENV = "JEDISOS_TEST_HINDSIGHT_DSN"
"""The admin URL of Hindsight's own server while the checks of a design that places Hindsight there run (the
suite's ``--test-hindsight-dsn``; an environment variable, not an option, for the reason above, and so that
the URL never appears on a command line)."""


def section_stage(section: str) -> str:
    return f"§{section} checks"


@dataclass(frozen=True)
class ClaimResult:
    """One claim's line of the ledger: the catalog's row with the verdict this run gave it."""

    id: str
    section: str
    claim: str
    verdict: Verdict
    evidence: str
    figures: dict[str, Figure]
    check: str
    checks: tuple[str, ...] = ()
    fix: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "section": self.section, "claim": self.claim, "verdict": self.verdict,
                "evidence": self.evidence, "figures": dict(self.figures), "check": self.check,
                "checks": list(self.checks), "fix": self.fix}


@dataclass(frozen=True)
class MeasurementResult:
    """One measurement of one design: what it measured, or why not (``not_measured``, one line)."""

    figures: dict[str, Figure]
    series: dict[str, list[tuple[float, float]]]
    notes: tuple[str, ...]
    seconds: float
    not_measured: str | None = None

    @classmethod
    def of(cls, measured: Measured, seconds: float) -> MeasurementResult:
        series = {k: [(float(x), float(y)) for x, y in v] for k, v in measured.series.items()}
        return cls(dict(measured.figures), series, tuple(measured.notes), seconds)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"figures": dict(self.figures), "series": {k: [list(p) for p in v]
                                                                          for k, v in self.series.items()},
                               "notes": list(self.notes), "seconds": self.seconds}
        if self.not_measured is not None:
            out["not_measured"] = self.not_measured
        return out


@dataclass(frozen=True)
class DesignResult:
    """One design's part of the ledger: the server it ran on, a verdict per claim, its measurements."""

    name: str
    server: dict[str, Any]
    claims: tuple[ClaimResult, ...]
    description: str | None = None
    file: str | None = None
    checks: dict[str, Any] = field(default_factory=dict)
    """How its pytest run went: ``tests_run``, ``collection_errors``, ``pytest_exit``, ``log``, ``seconds``."""
    measurements: dict[str, MeasurementResult] = field(default_factory=dict)

    def counts(self) -> dict[Verdict, int]:
        out: dict[Verdict, int] = {"holds": 0, "fails": 0, "partial": 0, "not_run": 0}
        for c in self.claims:
            out[c.verdict] += 1
        return out

    def not_measured(self) -> dict[str, str]:
        return {name: m.not_measured for name, m in self.measurements.items() if m.not_measured is not None}

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "server": self.server, "claims": [c.as_json() for c in self.claims]}
        if self.description is not None:
            out.update(description=self.description, file=self.file, checks=self.checks,
                       measurements={k: m.as_json() for k, m in self.measurements.items()})
        return out


@dataclass(frozen=True)
class Ledger:
    """What one run found: per design the server it ran on, a verdict per claim and its measurements; how the
    run went. A run without ``designs=`` has one design, :data:`DESIGN`, and no measurements; ``server``,
    ``claims``, ``name`` and ``counts()`` are the first design's."""

    designs: tuple[DesignResult, ...]
    run: dict[str, Any]
    sections: dict[str, str]
    paths: tuple[Path, ...] = field(default=())

    @property
    def server(self) -> dict[str, Any]:
        return self.designs[0].server

    @property
    def claims(self) -> tuple[ClaimResult, ...]:
        return self.designs[0].claims

    @property
    def name(self) -> str:
        return self.designs[0].name

    @property
    def compared(self) -> bool:
        """Designs named with ``designs=`` (side by side, with measurements), not today's single run."""
        return any(d.description is not None for d in self.designs)

    def counts(self) -> dict[Verdict, int]:
        return self.designs[0].counts()

    def as_json(self) -> dict[str, Any]:
        return {"designs": [d.as_json() for d in self.designs], "run": self.run}

    def section_title(self, section: str) -> str:
        return f"§{section} {self.sections.get(section, '')}".rstrip()


# --- the server ---------------------------------------------------------------------------------

@contextlib.contextmanager
def _server(dsn: str | DatabaseURL | None,
            settings: provision.ServerSettings | None = None) -> Iterator[tuple[DatabaseURL, str]]:
    """The admin URL the checks create their databases on, and where it came from; an embedded server is
    started with ``settings`` (default: the design's, :func:`provision.observed_settings`)."""
    if dsn is not None:
        url = dsn if isinstance(dsn, DatabaseURL) else urls.parse(dsn, field="--dsn")
        connect(url).close()  # unreachable: one line now, not one error per test
        yield url, "--dsn"
        return
    with provision.private_server(settings or provision.observed_settings(), prefix="jedisos-verify-pg-") as url:
        yield url, "embedded, private to this run"


def describe_server(url: DatabaseURL, source: str) -> dict[str, Any]:
    """Versions and the settings that shape the figures (max_connections, memory, durability)."""
    info = provision.server_info(url)
    with connect(url) as conn:
        row = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'").fetchone()
        settings = {str(k): str(v) for k, v in conn.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s) ORDER BY name",
            [list(REPORTED_SETTINGS)]).fetchall()}
    return {"source": source, "url": str(url), "server_version": info.server_version,
            "pgvector_version": info.pgvector_version or (str(row[0]) if row else None),
            "settings": settings}


# --- the pytest run -----------------------------------------------------------------------------

@contextlib.contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """Everything written to stdout/stderr (pytest's report, child processes) goes to ``log``, at the
    descriptor level; the caller's progress display must hold its own duplicate of the terminal."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    streams = sys.stdout, sys.stderr
    with log.open("w", encoding="utf-8", buffering=1) as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        sys.stdout = sys.stderr = out
        try:
            yield
        finally:
            out.flush()
            sys.stdout, sys.stderr = streams
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


class Collector:
    """The in-process plugin: stage totals at collection, progress per finished test, the findings at the end."""

    def __init__(self, catalog: Catalog, progress: Progress | None, *, quick: bool) -> None:
        self.catalog = catalog
        self.progress = progress
        self.quick = quick
        self.left_out: list[Finding] = []
        self.findings: list[Finding] = []
        self.collected = 0
        self.collection_errors = 0
        self._stage_of: dict[str, str] = {}
        self._done: dict[str, int] = {}
        self._total: dict[str, int] = {}

    def _section(self, claim_id: str) -> str:
        section = self.catalog.section_of(claim_id)
        m = _SECTION.match(claim_id)
        return section or (m.group(1) if m else "?")

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        if not self.quick:
            return
        for item in items:
            ids, _ = plugin.claims_of(item)
            if ids and any(item.get_closest_marker(m) for m in QUICK_LEFT_OUT):
                self.left_out += [Finding(cid, "not_run", QUICK_REASON, item.nodeid) for cid in ids]

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors += 1

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected = len(session.items)
        for item in session.items:
            ids, _ = plugin.claims_of(item)
            stage = section_stage(self._section(ids[0]))
            self._stage_of[item.nodeid] = stage
            self._total[stage] = self._total.get(stage, 0) + 1
        for stage in sorted(self._total, key=lambda s: int(s[1:].split()[0]) if s[1:].split()[0].isdigit() else 99):
            self._done[stage] = 0
            self._say(stage)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        stage = self._stage_of.get(nodeid)
        if stage is not None:
            self._done[stage] += 1
            self._say(stage)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.findings = plugin.findings_of(session.config)

    def _say(self, stage: str) -> None:
        if self.progress is not None:
            self.progress(stage, self._done[stage], self._total[stage])


def marker_expression(quick: bool) -> str:
    """The tests that run: every claim-marked test; ``--quick`` leaves out e2e and slow ones."""
    return " and ".join([plugin.MARKER, *(f"not {m}" for m in QUICK_LEFT_OUT if quick)])


def builds_template(design: Design) -> bool:
    """Whether the checks run on a template database built by ``design``. Not for a design that stops the
    main chain below head (``documented``: revision 006): the checks judge the document's DDL as written by
    building it themselves, while the code they drive (head's repositories) needs head's schema, so such a
    design is checked the way the default run checks it, on head's template."""
    source = design.schema
    return not (source.source == "migrations" and not source.versions and source.revision != "head")


def _run_pytest(source: Path, url: DatabaseURL, out_dir: Path, collector: Collector, quick: bool,
                design: Design | None = None, *, private: bool = False,
                hindsight: DatabaseURL | None = None) -> tuple[int, Path]:
    """pytest over the claim-marked checks; with ``design``, the suite's ``--design`` builds its template;
    with ``hindsight``, Hindsight's databases go to that server."""
    suffix = f"-{design.name}" if design is not None else ""
    log = out_dir / f"pytest{suffix}.log"
    chosen = ["--design", str(design.path)] if design is not None and builds_template(design) else []
    args = [str(source / "tests"), "-m", marker_expression(quick), "--test-dsn", url.libpq(), *chosen,
            plugin.OPTION, str(out_dir / f"findings{suffix}.json"), "--rootdir", str(source),
            "-c", str(source / "pyproject.toml"), "-p", "no:cacheprovider", "--continue-on-collection-errors",
            "-rfEs", "--color", "no", "--durations", "15",  # the log names the slowest checks
            # the plugin is imported before pytest starts (this module uses it); the suite's conftest names it too
            "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    with (_output_to(log), contextlib.chdir(source), _forget_imported_checks(source / "tests"),
          mock.patch.dict(os.environ)):
        for name in (PRIVATE_SERVER_ENV, HINDSIGHT_SERVER_ENV):
            os.environ.pop(name, None)  # a verify run inside a verify run names its own servers
        if private:
            os.environ[PRIVATE_SERVER_ENV] = "1"
        if hindsight is not None:
            os.environ[HINDSIGHT_SERVER_ENV] = hindsight.libpq()
        code = pytest.main(args, plugins=[collector])
    if code not in _COMPLETED:
        raise LocalServerError(f"the checks could not run: pytest stopped ({pytest.ExitCode(code).name}): "
                               f"{_last_error(log)}; see {log}")
    return int(code), log


@contextlib.contextmanager
def _forget_imported_checks(tests: Path) -> Iterator[None]:
    """Unload the test modules of ``tests`` this run imported, so a second run in the same process (another
    source tree with modules of the same names) imports its own (pytest refuses a module of another file)."""
    before = set(sys.modules)
    try:
        yield
    finally:
        for name in set(sys.modules) - before:
            path = getattr(sys.modules[name], "__file__", None)
            if path and Path(path).resolve().is_relative_to(tests.resolve()):
                del sys.modules[name]


def _last_error(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    errors = [line.removeprefix("E ").strip() for line in lines if line.startswith(("ERROR", "E ", "INTERNALERROR"))]
    return (errors or lines or ["no output"])[-1][:300]


# --- the ledger -----------------------------------------------------------------------------------

def _no_check(claim_where: str, claim_id: str) -> str:
    if claim_where == NOT_CHECKED:
        return "no check yet: docs/design-claims.md lists none for this claim"
    cited = claim_where.count("tests/")
    return (f"no marked check yet: docs/design-claims.md cites {cited} test(s) for it, none of which carries "
            f"claim({claim_id!r}) yet")


def judge(catalog: Catalog, findings: list[Finding]) -> tuple[ClaimResult, ...]:
    """One line per catalog claim (page order), then any claim id a test is marked with that the catalog lacks."""
    listed = [(c.id, c.section, c.text, _no_check(c.where, c.id)) for c in catalog.claims]
    known = {c.id for c in catalog.claims}
    for cid in sorted({f.claim for f in findings} - known):
        m = _SECTION.match(cid)
        listed.append((cid, m.group(1) if m else "?", "(not listed in docs/design-claims.md)", "no check ran"))
    out: list[ClaimResult] = []
    for cid, section, text, reason in listed:
        mine = [f for f in findings if f.claim == cid]
        if not mine:
            out.append(ClaimResult(cid, section, text, "not_run", reason, {}, ""))
            continue
        v = combine(cid, mine)
        out.append(ClaimResult(cid, section, text, v.verdict, v.evidence, dict(v.figures),
                               v.checks[0] if v.checks else "", v.checks, v.fix))
    return tuple(out)


def verify(target: str | DatabaseURL | None, out_dir: Path, *, quick: bool = False, progress: Progress | None = None,
           source: Path | None = None, designs: Sequence[str | Path] = (),
           hindsight_target: str | DatabaseURL | None = None, baseline: str | None = None) -> Ledger:
    """Judge the documented design on ``target`` (an admin URL; None: a private embedded server) and write
    ``verdicts.json``, ``report.md``, ``report.html`` (and ``pytest.log``, ``findings.json``) to ``out_dir``.

    ``designs`` (built-in names or design files): judge and measure each of them instead, side by side (the
    module doc says how); progress stages are then prefixed with the design's name. ``hindsight_target``: the
    admin URL of Hindsight's own server for designs that place it there (default: started here when
    ``target`` is None, none on a ``--dsn`` run). ``baseline``: the name of the design the others are
    compared with (:func:`pick_baseline`).

    Raises the package's typed errors when the run itself cannot complete (a bad design file, no source tree,
    no server, pytest stopped); claims found false are findings and a measurement that raises is "not
    measured", never errors.
    """
    from . import report

    loaded = _load_designs(designs)
    base = pick_baseline(loaded, baseline)
    tree = locate_source(source)
    catalog = Catalog.read(tree)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    started_at = datetime.now(UTC)

    def say(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(stage, done, total)

    if loaded:
        results = _compare(loaded, target, tree, catalog, out_dir, quick, say, hindsight_target, base)
    else:
        collector = Collector(catalog, progress, quick=quick)
        say(STAGE_SERVER, 0, 1)
        with _server(target) as (url, where):
            server = describe_server(url, where)
            say(STAGE_SERVER, 1, 1)
            code, log = _run_pytest(tree, url, out_dir, collector, quick, private=target is None)
        results = (DesignResult(DESIGN, server, judge(catalog, [*collector.findings, *collector.left_out]),
                                checks=_checks(collector, code, log, started, "head")),)
    say(STAGE_REPORT, 0, 1)
    checks = [d.checks for d in results]
    run = {"started": started_at.isoformat(timespec="seconds"), "seconds": round(time.monotonic() - started, 1),
           "quick": quick, "marker": marker_expression(quick), "source": str(tree),
           "jedisos_db": jedisos_db.__version__, "tests_run": sum(c["tests_run"] for c in checks),
           "collection_errors": sum(c["collection_errors"] for c in checks),
           "pytest_exit": max(c["pytest_exit"] for c in checks),
           "hindsight_installed": hindsight_ops.is_installed(), **({"baseline": base.name} if base else {}),
           "log": checks[0]["log"] if len(checks) == 1 else str(out_dir / "pytest-<design>.log")}
    if not loaded:  # today's ledger: the run's figures are the one design's
        results = (DesignResult(results[0].name, results[0].server, results[0].claims),)
    ledger = Ledger(results, run, dict(catalog.sections))
    paths = report.write(ledger, out_dir)
    say(STAGE_REPORT, 1, 1)
    return Ledger(ledger.designs, ledger.run, ledger.sections, paths)


BASELINE = "recommended"
"""The design others are compared with when it is one of them and ``--baseline`` does not say."""


def pick_baseline(loaded: Sequence[Design], name: str | None) -> Design | None:
    """The design the others are compared with: ``name`` (one of ``loaded``), else :data:`BASELINE` when
    compared, else the first; None without designs."""
    if name is not None and not any(d.name == name for d in loaded):
        compared = ", ".join(d.name for d in loaded) or "none (give --design)"
        raise ConfigError("--baseline", f"must name one of the designs compared ({compared}), got {name!r}")
    if not loaded:
        return None
    wanted = name or BASELINE
    return next((d for d in loaded if d.name == wanted), loaded[0])


def _load_designs(designs: Sequence[str | Path]) -> list[Design]:
    if not designs:
        return []
    from jedisos_db.harness import designs as design_files

    return design_files.load_all(list(designs))


def _checks(collector: Collector, code: int, log: Path, started: float, template: str) -> dict[str, Any]:
    return {"tests_run": collector.collected, "collection_errors": collector.collection_errors, "pytest_exit": code,
            "log": str(log), "seconds": round(time.monotonic() - started, 1), "template": template}


def server_settings(design: Design) -> provision.ServerSettings:
    """The embedded server a design deploys: its ``max_connections`` and reserved superuser connections."""
    from jedisos_db.ops import budget

    settings = provision.observed_settings(design.max_connections)
    if design.superuser_reserved == budget.POSTGRES_SUPERUSER_RESERVED:
        return settings
    reserved = {"superuser_reserved_connections": str(design.superuser_reserved)}
    return provision.ServerSettings(settings.max_connections, settings.shared_preload_libraries,
                                    {**settings.extra, **reserved})


def _server_note(design: Design, server: dict[str, Any]) -> str | None:
    """Where a ``--dsn`` server differs from the design's: budgets are then the design's numbers, not measured."""
    have = server["settings"].get("max_connections")
    if have is None or int(have) == design.max_connections:
        return None
    return (f"the server runs max_connections={have}, the design says {design.max_connections}: its connection "
            f"budget is reported against the design's {design.max_connections} (run without --dsn to start a "
            "server of the design's size)")


def hindsight_settings(design: Design) -> provision.ServerSettings:
    """The embedded server a design gives Hindsight of its own: its ``[hindsight] max_connections``."""
    assert design.hindsight_max_connections is not None  # the design schema requires it with own-server
    return provision.observed_settings(design.hindsight_max_connections)


NO_HINDSIGHT_SERVER = ("Hindsight's own server was not started (a --dsn run; give hindsight_target / --hindsight-dsn "
                       "for it): Hindsight's checks ran on the main server and its budget is computed, not measured")


@contextlib.contextmanager
def own_hindsight_server(design: Design, target: str | DatabaseURL | None,
                         hindsight_target: str | DatabaseURL | None = None,
                         ) -> Iterator[tuple[DatabaseURL | None, dict[str, Any]]]:
    """Hindsight's own server for ``design`` and how it is described in the ledger (``{}`` when Hindsight
    shares the main server): ``hindsight_target`` when given, else on a private run (``target`` None) a new
    embedded server of the design's size, stopped and removed when the block ends; on a ``--dsn`` run
    without ``hindsight_target``, none (the description's note says so)."""
    if not design.hindsight_own_server:
        yield None, {}
    elif hindsight_target is None and target is not None:
        yield None, {"note": NO_HINDSIGHT_SERVER}
    else:
        given = urls.parse(hindsight_target, field="--hindsight-dsn") if isinstance(hindsight_target, str) \
            else hindsight_target
        with _server(given, hindsight_settings(design)) as (url, _):
            yield url, describe_server(url, "--hindsight-dsn" if given is not None else
                                       "embedded, Hindsight's own, private to this run")


def _compare(loaded: Sequence[Design], target: str | DatabaseURL | None, tree: Path, catalog: Catalog,
             out_dir: Path, quick: bool, say: Progress,
             hindsight_target: str | DatabaseURL | None = None,
             baseline: Design | None = None) -> tuple[DesignResult, ...]:
    """Each design in turn: its server (shared by designs of the same server settings) and Hindsight's own
    when it has one, its checks, its measurements."""
    out: list[DesignResult] = []
    with contextlib.ExitStack() as stack:
        servers: dict[tuple[tuple[str, str], ...], tuple[DatabaseURL, dict[str, Any]]] = {}
        for design in loaded:
            started = time.monotonic()
            settings = server_settings(design)
            key = tuple(sorted(settings.as_parameters().items())) if target is None else ()
            stage = f"{design.name}: {STAGE_SERVER}"
            say(stage, 0, 1)
            if key not in servers:
                url, where = stack.enter_context(_server(target, settings))
                servers[key] = url, describe_server(url, where)
            url, server = servers[key]
            note = _server_note(design, server)
            server = {**server, "note": note} if note else server

            def prefixed(stage: str, done: int, total: int, name: str = design.name) -> None:
                say(f"{name}: {stage}", done, total)

            with own_hindsight_server(design, target, hindsight_target) as (own, described):
                if described:
                    server = {**server, "hindsight": described}
                say(stage, 1, 1)
                collector = Collector(catalog, prefixed, quick=quick)
                code, log = _run_pytest(tree, url, out_dir, collector, quick, design, private=target is None,
                                        hindsight=own)
                claims = judge(catalog, [*collector.findings, *collector.left_out])
                checks = _checks(collector, code, log, started, "design" if builds_template(design) else "head")
                out.append(DesignResult(design.name, server, claims, design.description, str(design.path), checks,
                                        measure_all(design, url, quick, prefixed, hindsight=own,
                                                    baseline=baseline)))
    return tuple(out)


def measure_all(design: Design, url: DatabaseURL, quick: bool, say: Progress, *,
                hindsight: DatabaseURL | None = None, baseline: Design | None = None,
                ) -> dict[str, MeasurementResult]:
    """Every registered measurement of ``design`` on the server at ``url`` (and Hindsight's own at
    ``hindsight``), in registry order; one that raises becomes "not measured: <its one line>" and the next
    one runs."""
    from jedisos_db.harness.measure import Context, registry

    out: dict[str, MeasurementResult] = {}
    for name, measure in list(registry.MEASUREMENTS.items()):
        stage = f"measure {name}"
        say(stage, 0, 1)

        def step(done: int, total: int, stage: str = stage) -> None:
            say(stage, done, total)

        started = time.monotonic()
        try:
            measured = measure(design, Context(server=url, quick=quick, progress=step, hindsight_server=hindsight,
                                              baseline=baseline))
        except Exception as exc:  # a measurement's failure is its row, never the end of the other designs
            out[name] = MeasurementResult({}, {}, (), round(time.monotonic() - started, 1),
                                          f"not measured: {one_line(exc)}")
        else:
            out[name] = MeasurementResult.of(measured, round(time.monotonic() - started, 1))
        say(stage, 1, 1)
    return out


def one_line(exc: BaseException) -> str:
    """An error as one line: its message's first line, with the type when the message does not say it."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    if not first:
        return type(exc).__name__
    return (first if isinstance(exc, JedisosDBError) else f"{type(exc).__name__}: {first}")[:300]
