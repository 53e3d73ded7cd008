"""Alembic, driven from Python: the CLI, the test suite and ``jedisos-db up`` all come through here.

The migration scripts live in ``alembic/`` at the top of the source tree and are copied into the
wheel as ``jedisos_db/alembic``; :func:`script_location` finds whichever exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from jedisos_db.runtime.db import faults
from jedisos_db.runtime.errors import JedisosDBError, MigrationError
from jedisos_db.runtime.owners import SCHEMA, VERSION_TABLE
from jedisos_db.runtime.urls import DatabaseURL


def script_location() -> Path:
    """The directory holding ``env.py`` and ``versions/`` (installed wheel first, then source tree)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parents[1] / "alembic", here.parents[3] / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise MigrationError(f"no Alembic scripts found next to {here}; reinstall jedisos-db")


def alembic_config(url: DatabaseURL | None = None) -> Config:
    """An Alembic config for ``url``; env.py reads the URL from ``config.attributes``.

    Without ``url``, env.py takes the environment's (``JEDISOS_DB_URL`` or ``POSTGRES_*``).
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    cfg.set_main_option("version_table", VERSION_TABLE)
    cfg.set_main_option("version_table_schema", SCHEMA)
    if url is not None:
        cfg.attributes["url"] = url
    return cfg


def upgrade(url: DatabaseURL, revision: str = "head") -> None:
    """Bring the schema to ``revision``, all or nothing: a revision that fails is named in a
    :class:`MigrationError` saying the schema is unchanged (env.py runs every step in one transaction)."""
    _run(url, revision, upgrading=True)


def downgrade(url: DatabaseURL, revision: str) -> None:
    """Take the schema back to ``revision``; fails like :func:`upgrade`."""
    _run(url, revision, upgrading=False)


def _run(url: DatabaseURL, target: str, *, upgrading: bool) -> None:
    cfg = alembic_config(url)
    done: list[str] = []

    def applied(*, step: Any, **_: Any) -> None:
        done.append(step.up_revision_id if upgrading else step.down_revision_ids)

    cfg.attributes["on_version_apply"] = applied
    try:
        (command.upgrade if upgrading else command.downgrade)(cfg, target)
    except (JedisosDBError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if faults.is_connection_fault(exc):
            raise faults.unavailable(url, "migrating", 0.0, exc) from exc
        at = current(url)  # read after the rollback: what the schema really is now
        failed = _failed_step(cfg, at, target, len(done), upgrading)
        raise MigrationError(
            f"{'upgrade' if upgrading else 'downgrade'} to {target} failed at revision {failed}: "
            f"{faults.reason(exc)}; all steps ran in one transaction and were rolled back, the schema is "
            f"unchanged (still at {at or 'no revision'})") from exc


def _failed_step(cfg: Config, at: str | None, target: str, steps_done: int, upgrading: bool) -> str:
    """The revision whose step failed: the first one after the ``steps_done`` that succeeded."""
    script = ScriptDirectory.from_config(cfg)
    try:
        upper, lower = (target, at) if upgrading else (at, target)
        path = [r for r in script.iterate_revisions(upper, lower) if r is not None]
    except Exception:  # an unknown target, or a graph Alembic cannot walk: say so rather than guess
        return "?"
    if upgrading:
        path.reverse()  # iterate_revisions walks from the newest down
    if steps_done >= len(path):
        return "?"
    step = path[steps_done]
    return f"{step.revision} ({(step.doc or '').strip()})" if step.doc else step.revision


def current(url: DatabaseURL) -> str | None:
    """The revision the database is at, or None when nothing is applied (or no version table)."""
    heads = current_heads(url)
    return heads[0] if heads else None


def current_heads(url: DatabaseURL, *, version_table: str = VERSION_TABLE, schema: str = SCHEMA) -> tuple[str, ...]:
    """The revisions an Alembic version table holds (empty when it does not exist), read by Alembic.

    The defaults read ours; ``jedisos_db.ops.hindsight`` reads Hindsight's with its own table and schema.
    """
    engine = create_engine(url.psycopg(), pool_pre_ping=False)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table(version_table, schema=schema):
                return ()
            ctx = MigrationContext.configure(
                conn, opts={"version_table": version_table, "version_table_schema": schema}
            )
            return tuple(ctx.get_current_heads())
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Revision:
    revision: str
    down_revision: str | None
    message: str
    is_head: bool


def history() -> list[Revision]:
    """All revisions, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    heads = set(script.get_heads())
    revs = list(script.walk_revisions())
    revs.reverse()
    out: list[Revision] = []
    for rev in revs:
        down = rev.down_revision
        out.append(
            Revision(
                revision=rev.revision,
                down_revision=down if isinstance(down, str) or down is None else ",".join(down),
                message=rev.doc or "",
                is_head=rev.revision in heads,
            )
        )
    return out


def head() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise MigrationError(f"expected one head revision, found {len(heads)}: {heads}")
    return heads[0]
