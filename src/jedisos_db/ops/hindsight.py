"""Hindsight's own migrations, run through its own entry point (design §1 start-up order).

Hindsight owns schema ``hindsight``: its Alembic migrations create it. This module never touches
that schema by SQL; it starts ``hindsight-admin run-db-migration`` as a subprocess, because
Hindsight pulls in a large import graph (litellm, fastapi, psycopg2) that has no business in the
caller's process, and because the interpreter may be a separate virtual environment
(``JEDISOS_HINDSIGHT_PYTHON``) when its pins clash with ours.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from jedisos_db.runtime.errors import HindsightServerError
from jedisos_db.runtime.owners import HINDSIGHT_SCHEMA
from jedisos_db.runtime.urls import DatabaseURL

SCHEMA = HINDSIGHT_SCHEMA
APPLICATION_NAME = "hindsight-api"
"""``application_name`` of the API server's connections."""
MIGRATION_APPLICATION_NAME = "hindsight-migrations"
"""``application_name`` of the migration run's connections."""
ENV_PYTHON = "JEDISOS_HINDSIGHT_PYTHON"
"""An interpreter with ``hindsight-api-slim`` installed, when it is not this one."""
ENV_PREFIX = "HINDSIGHT_API_"
LOG_TAIL_LINES = 40


def hindsight_python() -> str:
    """The interpreter that runs Hindsight: ``$JEDISOS_HINDSIGHT_PYTHON`` or this one."""
    return os.environ.get(ENV_PYTHON) or sys.executable


def is_installed(python: str | None = None) -> bool:
    """Whether ``hindsight_api`` can be imported by ``python`` (default: :func:`hindsight_python`)."""
    python = python or hindsight_python()
    if python == sys.executable:
        return importlib.util.find_spec("hindsight_api") is not None
    probe = subprocess.run([python, "-c", "import hindsight_api"], capture_output=True, check=False)
    return probe.returncode == 0


def tagged_url(url: DatabaseURL, application_name: str) -> str:
    """The libpq URL Hindsight gets (in its environment): ours, with ``application_name`` set
    (Hindsight re-asserts it per acquire)."""
    return url.with_query(application_name=application_name).libpq()


def _clean_environ() -> dict[str, str]:
    """This process's environment minus any HINDSIGHT_API_* a developer's shell may carry."""
    return {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


@dataclass(frozen=True)
class MigrationRun:
    """What one run of Hindsight's migrations did: its schema, wall time, and output tail."""

    schema: str
    seconds: float
    output: str


def run_migrations(url: DatabaseURL, schema: str = SCHEMA, *, python: str | None = None,
                   timeout: float = 300.0) -> MigrationRun:
    """Run Hindsight's own migrations into ``schema`` of the database at ``url``.

    Calls Hindsight's entry point (``hindsight-admin run-db-migration --schema``) with
    ``HINDSIGHT_API_DATABASE_URL``: it takes its own advisory lock, creates the schema, and
    creates/moves ``vector``, ``pg_trgm`` and ``btree_gin`` into ``public``, so the role in
    ``url`` must be allowed to create extensions (or they must exist). Idempotent.
    Raises :class:`HindsightServerError` with the output tail when it fails.
    """
    python = python or hindsight_python()
    env = _clean_environ() | {
        "HINDSIGHT_API_DATABASE_URL": tagged_url(url, MIGRATION_APPLICATION_NAME),
        "HINDSIGHT_API_DATABASE_SCHEMA": schema,
    }
    cmd = [python, "-m", "hindsight_api.admin.cli", "run-db-migration", "--schema", schema]
    started = time.monotonic()
    try:
        # cwd: Hindsight loads a .env from the working directory; a neutral one keeps it out.
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False,
                              cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or "") if isinstance(exc.stdout, str) else ""
        raise HindsightServerError(
            f"Hindsight migrations into schema {schema!r} of {url} did not finish in "
            f"{timeout:.0f} s; last output:\n{_tail(out)}"
        ) from None
    except FileNotFoundError:
        raise HindsightServerError(
            f"no Python interpreter at {python!r} (set {ENV_PYTHON} or install jedisos-db[hindsight])"
        ) from None
    output = done.stdout + done.stderr
    if done.returncode != 0:
        if "No module named" in output and "hindsight_api" in output:
            raise HindsightServerError(
                f"hindsight-api-slim is not installed for {python}: pip install 'jedisos-db[hindsight]'"
            )
        raise HindsightServerError(
            f"Hindsight migrations into schema {schema!r} of {url} failed "
            f"(exit {done.returncode}); last output:\n{_tail(output)}"
        )
    return MigrationRun(schema=schema, seconds=time.monotonic() - started, output=_tail(output))
