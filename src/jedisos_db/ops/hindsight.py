"""Hindsight's own migrations, run through its own entry point (design §1 start-up order).

Hindsight owns schema ``hindsight``: its Alembic migrations create it. This module never touches
that schema by SQL; it starts ``hindsight-admin run-db-migration`` as a subprocess, because
Hindsight pulls in a large import graph (litellm, fastapi, psycopg2) that has no business in the
caller's process, and because the interpreter may be a separate virtual environment
(``JEDISOS_HINDSIGHT_PYTHON``) when its pins clash with ours.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jedisos_db.runtime.db import migrations
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
VERSION_TABLE = "alembic_version"
"""Hindsight's Alembic keeps its version table, under Alembic's default name, inside its own schema."""
LOG_TAIL_LINES = 40
ADMIN_MODULE = "hindsight_api.admin.cli"
"""Hindsight's admin entry point (``hindsight-admin``)."""


def hindsight_python() -> str:
    """The interpreter that runs Hindsight: ``$JEDISOS_HINDSIGHT_PYTHON`` or this one."""
    return os.environ.get(ENV_PYTHON) or sys.executable


def is_installed(python: str | None = None) -> bool:
    """Whether ``hindsight_api`` can be imported by ``python`` (default: :func:`hindsight_python`)."""
    python = python or hindsight_python()
    if python == sys.executable:
        return importlib.util.find_spec("hindsight_api") is not None
    try:
        probe = subprocess.run([python, "-c", "import hindsight_api"], capture_output=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        # A missing or unusable interpreter (e.g. $JEDISOS_HINDSIGHT_PYTHON naming no file) has nothing installed.
        return False
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


# --- a warm interpreter for many runs ------------------------------------------------------------

# Runs in the warm interpreter: import Hindsight's admin CLI once, then fork per request. The child sets
# the request's environment and working directory and runs the entry point exactly as `python -m` would
# (main() loads the .env and parses argv); the parent answers one JSON line per request.
_WARM_WORKER = f"""
import json, os, sys
import {ADMIN_MODULE} as cli
import hindsight_api.migrations  # imported by the command on first use; once here
from hindsight_api.config import clear_config_cache
replies = sys.stdout
sys.stdout = sys.stderr
print(json.dumps({{"ready": True}}), file=replies, flush=True)
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        log = os.open(request["log"], os.O_WRONLY | os.O_TRUNC)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        clear_config_cache()
        sys.argv = ["hindsight-admin", *request["args"]]
        code = 0
        try:
            cli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({{"code": os.waitstatus_to_exitcode(status)}}), file=replies, flush=True)
"""
WARM_START_TIMEOUT = 120.0
_TIMED_OUT = object()
"""What ``_WarmInterpreter._reply`` gives when the worker said nothing in time."""


class _WarmInterpreter:
    """One interpreter of ``python`` that has imported Hindsight's admin CLI and forks a child per run."""

    def __init__(self, python: str) -> None:
        self.python = python
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._failed = False

    def _start(self) -> bool:
        """Start the worker on first use (a session that never migrates pays nothing); False if it cannot."""
        if self._process is None and not self._failed:
            self._process = subprocess.Popen(
                [self.python, "-c", _WARM_WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True, env=_clean_environ(), cwd=tempfile.gettempdir(),
                start_new_session=True)
            ready = self._reply(WARM_START_TIMEOUT)
            if ready is None or ready is _TIMED_OUT:  # Hindsight not importable there, or too slow: every run goes cold
                self.close()
                self._failed = True
        return self._process is not None

    def _reply(self, timeout: float) -> dict[str, int] | object | None:
        """The worker's next line; None when it exited; ``_TIMED_OUT`` when it said nothing within ``timeout``."""
        process = self._process
        if process is None or process.stdout is None:
            return None
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        if not ready:
            return _TIMED_OUT
        line = process.stdout.readline()
        return dict(json.loads(line)) if line else None

    def run(self, args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str] | None:
        """Run ``hindsight-admin args`` in a fork; None when the worker is busy (another thread) or gone, so
        the caller starts a cold interpreter instead. Raises ``subprocess.TimeoutExpired`` like ``run``."""
        if not self._lock.acquire(blocking=False):
            return None
        fd, name = tempfile.mkstemp(prefix="hindsight-admin-", suffix=".log")
        os.close(fd)
        log = Path(name)
        cmd = [self.python, "-m", ADMIN_MODULE, *args]
        try:
            process = self._process if self._start() else None
            if process is None or process.stdin is None:
                return None
            request = {"args": args, "env": env, "cwd": tempfile.gettempdir(), "log": str(log)}
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
                reply = self._reply(timeout)
            except BrokenPipeError:
                reply = None
            if reply is _TIMED_OUT:
                self.close()  # the worker and its child share a process group
                raise subprocess.TimeoutExpired(cmd, timeout, output=log.read_text(errors="replace"))
            if not isinstance(reply, dict):
                self.close()
                self._failed = True
                return None
            return subprocess.CompletedProcess(cmd, int(reply["code"]), log.read_text(errors="replace"), "")
        finally:
            log.unlink(missing_ok=True)
            self._lock.release()

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


_WARM: dict[str, _WarmInterpreter] = {}


@contextlib.contextmanager
def warm_interpreter(python: str | None = None) -> Iterator[None]:
    """While open, :func:`run_migrations` for ``python`` runs Hindsight's entry point in a fork of an
    interpreter that has imported it already: the same command, environment and working directory as a
    new interpreter, without its ~5 s of imports per run (a test session migrates dozens of databases).
    The interpreter starts on the first run; if it cannot import Hindsight, runs go cold as without it."""
    python = python or hindsight_python()
    if python in _WARM:
        yield
        return
    warm = _WarmInterpreter(python)
    _WARM[python] = warm
    try:
        yield
    finally:
        del _WARM[python]
        warm.close()


def _run_admin(python: str, args: list[str], env: dict[str, str], timeout: float, *,
               warm: bool) -> subprocess.CompletedProcess[str]:
    """``hindsight-admin args`` under ``python``: in the warm interpreter when one is open and free."""
    worker = _WARM.get(python) if warm else None
    done = worker.run(args, env, timeout) if worker is not None else None
    if done is not None:
        return done
    # cwd: Hindsight loads a .env from the working directory; a neutral one keeps it out.
    return subprocess.run([python, "-m", ADMIN_MODULE, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=tempfile.gettempdir())


def run_migrations(url: DatabaseURL, schema: str = SCHEMA, *, python: str | None = None,
                   timeout: float = 300.0, warm: bool = True) -> MigrationRun:
    """Run Hindsight's own migrations into ``schema`` of the database at ``url``.

    Calls Hindsight's entry point (``hindsight-admin run-db-migration --schema``) with
    ``HINDSIGHT_API_DATABASE_URL``: it takes its own advisory lock, creates the schema, and
    creates/moves ``vector``, ``pg_trgm`` and ``btree_gin`` into ``public``, so the role in
    ``url`` must be allowed to create extensions (or they must exist). Idempotent. Inside
    :func:`warm_interpreter` it runs in the warm interpreter unless ``warm=False``.
    Raises :class:`HindsightServerError` with the output tail when it fails.
    """
    python = python or hindsight_python()
    env = _clean_environ() | {
        "HINDSIGHT_API_DATABASE_URL": tagged_url(url, MIGRATION_APPLICATION_NAME),
        "HINDSIGHT_API_DATABASE_SCHEMA": schema,
    }
    args = ["run-db-migration", "--schema", schema]
    started = time.monotonic()
    try:
        done = _run_admin(python, args, env, timeout, warm=warm)
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


def migration_version(url: DatabaseURL, schema: str = SCHEMA) -> str | None:
    """The Alembic revision Hindsight's migrations left in ``schema`` (heads joined by ``,``), None before any.

    Hindsight's env.py keeps Alembic's default version table inside its schema; Alembic reads it. This
    module runs Hindsight's migrations, so it is also where their state is read (a backup records it).
    """
    return ",".join(sorted(migrations.current_heads(url, version_table=VERSION_TABLE, schema=schema))) or None
