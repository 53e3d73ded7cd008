"""Alembic, driven from Python: the CLI, the test suite and ``jedisos-db up`` all come through here.

The migration scripts live in ``alembic/`` at the top of the source tree and are copied into the
wheel as ``jedisos_db/alembic``; :func:`script_location` finds whichever exists.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import create_engine, inspect

from jedisos_db.runtime.db import faults
from jedisos_db.runtime.db.revision_columns import COMMITS_PART_WAY
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


def alembic_config(url: DatabaseURL | None = None, *, versions: Sequence[Path] = ()) -> Config:
    """An Alembic config for ``url``; env.py reads the URL from ``config.attributes``.

    Without ``url``, env.py takes the environment's (``JEDISOS_DB_URL`` or ``POSTGRES_*``).
    ``versions`` adds directories of a design's own revisions (e.g. ``alembic/variants/partitioned``)
    after ours: they continue the chain from one of our revisions, which stays unchanged without them.
    """
    cfg = Config()
    location = script_location()
    cfg.set_main_option("script_location", str(location))
    if versions:
        cfg.set_main_option("path_separator", "os")
        cfg.set_main_option("version_locations",
                            os.pathsep.join(str(p) for p in (location / "versions", *versions)))
    cfg.set_main_option("version_table", VERSION_TABLE)
    cfg.set_main_option("version_table_schema", SCHEMA)
    if url is not None:
        cfg.attributes["url"] = url
    return cfg


def upgrade(url: DatabaseURL, revision: str = "head", *, versions: Sequence[Path] = ()) -> None:
    """Bring the schema to ``revision``. A run is all or nothing (env.py runs its steps in one transaction),
    except across a revision that commits part-way (:data:`COMMITS_PART_WAY`, e.g. 010's ``CREATE INDEX
    CONCURRENTLY``): the run is then split into legs before and after it, each committed whole, so a failure
    leaves the schema at exactly the revision its version table names. The :class:`MigrationError` names the
    revision that failed, the revisions applied and committed, and the revision the schema is at."""
    _run(url, revision, upgrading=True, versions=versions)


def downgrade(url: DatabaseURL, revision: str, *, versions: Sequence[Path] = ()) -> None:
    """Take the schema back to ``revision``, all or nothing (no downgrade commits part-way); fails like
    :func:`upgrade`."""
    _run(url, revision, upgrading=False, versions=versions)


@dataclass(frozen=True)
class _Step:
    script: Script
    after: str | None
    """The revision the schema is at once this step is done (None: no revision)."""

    @property
    def name(self) -> str:
        doc = (self.script.doc or "").strip()
        return f"{self.script.revision} ({doc})" if doc else self.script.revision

    upgrading: bool

    @property
    def part_way(self) -> bool:
        return self.upgrading and bool(getattr(self.script.module, COMMITS_PART_WAY, False))


def _steps(cfg: Config, start: str | None, target: str, upgrading: bool) -> list[_Step]:
    """The steps from ``start`` to ``target`` in the order they run; empty when Alembic cannot walk the graph
    that way (a relative or unknown target, branches): the run then goes as one leg."""
    script = ScriptDirectory.from_config(cfg)
    try:
        upper, lower = (target, start) if upgrading else (start, target)
        path = [r for r in script.iterate_revisions(upper, lower) if r is not None]
    except Exception:
        return []
    if upgrading:
        path.reverse()  # iterate_revisions walks from the newest down
        return [_Step(r, r.revision, upgrading) for r in path]
    return [_Step(r, r.down_revision if isinstance(r.down_revision, str) else None, upgrading) for r in path]


def _legs(steps: list[_Step], target: str) -> list[tuple[int, str]]:
    """Where the run stops to commit: (index of the leg's last step, revision to go to). A step that commits
    part-way runs alone, so every leg but that one is all or nothing."""
    cuts = sorted({i for n, step in enumerate(steps) if step.part_way for i in (n - 1, n) if i >= 0})
    legs = [(i, steps[i].after or "base") for i in cuts if i < len(steps) - 1]
    return [*legs, (len(steps) - 1, target)]


def _run(url: DatabaseURL, target: str, *, upgrading: bool, versions: Sequence[Path]) -> None:
    cfg = alembic_config(url, versions=versions)
    done: list[str] = []

    def applied(*, step: Any, **_: Any) -> None:
        done.append(step.up_revision_id if upgrading else step.down_revision_ids)

    cfg.attributes["on_version_apply"] = applied
    start = current(url)
    steps = _steps(cfg, start, target, upgrading)
    try:
        for last, leg_target in _legs(steps, target):
            if last < len(steps) - 1 and _reached(url, steps, last):
                continue  # another run went past this leg meanwhile (each leg takes the migration lock anew)
            (command.upgrade if upgrading else command.downgrade)(cfg, leg_target)
    except (JedisosDBError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if faults.is_connection_fault(exc):
            raise faults.unavailable(url, "migrating", 0.0, exc) from exc
        raise MigrationError(_failure(url, target, upgrading, steps, start, len(done), exc)) from exc


def _reached(url: DatabaseURL, steps: list[_Step], last: int) -> bool:
    at = current(url)
    return any(step.after == at for step in steps[last:])


def _failure(url: DatabaseURL, target: str, upgrading: bool, steps: list[_Step], start: str | None,
             steps_done: int, exc: BaseException) -> str:
    """What a failed run did, from the version table read after the rollback (what the schema really is)."""
    at = current(url)
    failed = steps[steps_done] if steps_done < len(steps) else None
    head = (f"{'upgrade' if upgrading else 'downgrade'} to {target} failed at revision "
            f"{failed.name if failed else '?'}: {faults.reason(exc)}; ")
    part_way = failed is not None and failed.part_way
    if at == start and not part_way:
        return (head + "all steps ran in one transaction and were rolled back, the schema is unchanged "
                f"(still at {at or 'no revision'})")
    said = []
    if at != start:
        committed = next((n + 1 for n, step in enumerate(steps) if step.after == at), 0)
        names = ", ".join(step.script.revision for step in steps[:committed]) or f"from {start} to {at}"
        said.append(f"revision{'s' if committed != 1 else ''} {names} {'was' if committed == 1 else 'were'} "
                    f"{'applied' if upgrading else 'undone'} and committed before it (the run commits before "
                    "and after a revision that builds an index CONCURRENTLY)")
    if part_way and failed is not None:
        said.append(f"revision {failed.script.revision} runs partly outside a transaction, so what it did "
                    "before failing stays; rerunning completes it")
    else:
        said.append("its own steps were rolled back")
    said.append(f"the schema is at revision {at or 'no revision'}")
    return head + "; ".join(said)


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


def head(*, versions: Sequence[Path] = ()) -> str:
    heads = ScriptDirectory.from_config(alembic_config(versions=versions)).get_heads()
    if len(heads) != 1:
        raise MigrationError(f"expected one head revision, found {len(heads)}: {heads}")
    return heads[0]
