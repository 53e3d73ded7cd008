"""The real Hindsight server, run from this machine: its migrations and its API process.

Hindsight owns schema ``hindsight``: its own Alembic migrations create it and its own asyncpg
pools use it. This module never touches that schema by SQL; it only starts Hindsight's own
entry points as subprocesses (design §1: "Hindsight 서버 시작 → Alembic으로 hindsight 스키마
마이그레이션"). Subprocesses because Hindsight pulls in a large import graph (litellm, fastapi,
psycopg2) that has no business in the caller's process, and because the interpreter may be a
separate virtual environment (``JEDISOS_HINDSIGHT_PYTHON``) when its pins clash with ours.

Offline by construction: mock LLM, ``rrf`` reranker, and our own TEI-compatible embedding
endpoint on loopback (:mod:`jedisos_db.hindsight.embeddings`). Every database connection
Hindsight opens carries ``application_name`` ``hindsight-api`` / ``hindsight-migrations``
so the server-side statement log can attribute each statement to its owner.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from jedisos_db import urls
from jedisos_db.hindsight.embeddings import EmbeddingServer
from jedisos_db.hindsight.errors import HindsightServerError

SCHEMA = "hindsight"
"""The schema Hindsight owns (``HINDSIGHT_API_DATABASE_SCHEMA``)."""
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


def tagged_url(url: str, application_name: str) -> str:
    """The libpq URL Hindsight gets: ours, with ``application_name`` set (Hindsight re-asserts it per acquire)."""
    parsed = urls.parse(url, field="database_url")
    return urls.to_libpq(parsed.update_query_dict({"application_name": application_name}))


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


def run_migrations(url: str, schema: str = SCHEMA, *, python: str | None = None,
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
            f"Hindsight migrations into schema {schema!r} of {urls.redact(url)} did not finish in "
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
            f"Hindsight migrations into schema {schema!r} of {urls.redact(url)} failed "
            f"(exit {done.returncode}); last output:\n{_tail(output)}"
        )
    return MigrationRun(schema=schema, seconds=time.monotonic() - started, output=_tail(output))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class HindsightSettings:
    """How the local server is run. Pools are small on purpose: tests share one PostgreSQL.

    Hindsight's real defaults are min 5 / max 100 for each of its two pools (design §1's
    ``max_connections=200`` budget is checked against those elsewhere, not here).
    """

    pool_min_size: int = 1
    pool_max_size: int = 8
    read_pool_min_size: int = 1
    read_pool_max_size: int = 4
    startup_timeout: float = 120.0
    log_level: str = "info"
    run_migrations_on_startup: bool = False

    def environ(self) -> dict[str, str]:
        return {
            "HINDSIGHT_API_DB_POOL_MIN_SIZE": str(self.pool_min_size),
            "HINDSIGHT_API_DB_POOL_MAX_SIZE": str(self.pool_max_size),
            "HINDSIGHT_API_READ_DB_POOL_MIN_SIZE": str(self.read_pool_min_size),
            "HINDSIGHT_API_READ_DB_POOL_MAX_SIZE": str(self.read_pool_max_size),
            "HINDSIGHT_API_LOG_LEVEL": self.log_level,
            "HINDSIGHT_API_RUN_MIGRATIONS_ON_STARTUP": str(self.run_migrations_on_startup).lower(),
        }


class HindsightServer:
    """The real Hindsight API server as a subprocess on a free loopback port, fully offline.

    ``with HindsightServer(url) as hs: hs.base_url`` starts the embedding endpoint (unless
    ``embeddings_url`` is given), then ``python -m hindsight_api.main``, waits until
    ``/health/ready`` answers 200 (bounded by ``settings.startup_timeout``) and stops both on
    exit. Output goes to ``log_path``; a failed start raises :class:`HindsightServerError`
    with its tail. Run :func:`run_migrations` first (the design's start-up order); the
    server does not migrate on its own unless ``settings.run_migrations_on_startup``.
    """

    def __init__(self, database_url: str, *, schema: str = SCHEMA, settings: HindsightSettings | None = None,
                 embeddings_url: str | None = None, log_path: Path | None = None, python: str | None = None,
                 host: str = "127.0.0.1", port: int | None = None, env: Mapping[str, str] | None = None) -> None:
        self.database_url = urls.to_libpq(urls.parse(database_url, field="database_url"))
        self.schema = schema
        self.settings = settings or HindsightSettings()
        self.python = python or hindsight_python()
        self.host = host
        self.port = port
        self.log_path = log_path
        self.extra_env = dict(env or {})
        self.startup_seconds: float | None = None
        self._embeddings_url = embeddings_url
        self._embeddings: EmbeddingServer | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_dir: tempfile.TemporaryDirectory[str] | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"HindsightServer({urls.redact(self.database_url)!r}, schema={self.schema!r}, {state})"

    @property
    def base_url(self) -> str:
        if self.port is None or self._process is None:
            raise HindsightServerError("the Hindsight server is not running; call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def embeddings_url(self) -> str | None:
        return self._embeddings_url

    @property
    def embeddings(self) -> EmbeddingServer | None:
        """The embedding endpoint this server started (None when ``embeddings_url`` was given)."""
        return self._embeddings

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def environ(self) -> dict[str, str]:
        """The environment the server process gets (no secrets: the URL's password is the caller's)."""
        assert self._embeddings_url is not None
        return _clean_environ() | {
            "HINDSIGHT_API_DATABASE_URL": tagged_url(self.database_url, APPLICATION_NAME),
            "HINDSIGHT_API_DATABASE_SCHEMA": self.schema,
            "HINDSIGHT_API_LLM_PROVIDER": "mock",
            "HINDSIGHT_API_RERANKER_PROVIDER": "rrf",
            "HINDSIGHT_API_EMBEDDINGS_PROVIDER": "tei",
            "HINDSIGHT_API_EMBEDDINGS_TEI_URL": self._embeddings_url,
            "HINDSIGHT_API_SKIP_LLM_VERIFICATION": "true",
            "HINDSIGHT_API_MCP_ENABLED": "false",
            **self.settings.environ(),
            **self.extra_env,
        }

    def start(self) -> str:
        """Start (if not yet running) and wait until ready; return ``base_url``."""
        if self.running:
            return self.base_url
        if self._embeddings_url is None:
            self._embeddings = EmbeddingServer()
            self._embeddings_url = self._embeddings.start()
        if self.log_path is None:
            self._log_dir = tempfile.TemporaryDirectory(prefix="hindsight-")
            self.log_path = Path(self._log_dir.name) / "hindsight-api.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host)
        cmd = [self.python, "-m", "hindsight_api.main", "--host", self.host, "--port", str(self.port),
               "--workers", "1", "--no-access-log"]
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            try:
                # Own session: stop() signals the server and only what it spawned, as one group.
                self._process = subprocess.Popen(cmd, env=self.environ(), stdout=log, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL, cwd=self.log_path.parent,
                                                 start_new_session=True)
            except FileNotFoundError:
                self._stop_embeddings()
                raise HindsightServerError(
                    f"no Python interpreter at {self.python!r} (set {ENV_PYTHON} or install jedisos-db[hindsight])"
                ) from None
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self.base_url

    def _wait_ready(self, started: float) -> None:
        deadline = started + self.settings.startup_timeout
        url = f"http://{self.host}:{self.port}/health/ready"
        last = "no answer yet"
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                assert self._process is not None
                code = self._process.poll()
                if code is not None:
                    raise HindsightServerError(
                        f"the Hindsight server exited with code {code} before it was ready "
                        f"(log {self.log_path}):\n{self.log_tail()}"
                    )
                try:
                    response = http.get(url)
                    if response.status_code == 200:
                        return
                    last = f"HTTP {response.status_code}: {response.text[:200]}"
                except httpx.TransportError as exc:
                    last = f"{type(exc).__name__}"
                time.sleep(0.25)
        raise HindsightServerError(
            f"the Hindsight server was not ready within {self.settings.startup_timeout:.0f} s "
            f"(last probe of {url}: {last}; log {self.log_path}):\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the server's log, for failure messages."""
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return _tail(self.log_path.read_text(errors="replace"), lines)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the server's process group, SIGKILL it if it does not exit within ``timeout``."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self._stop_embeddings()

    def _stop_embeddings(self) -> None:
        if self._embeddings is not None:
            self._embeddings.stop()
            self._embeddings = None
            self._embeddings_url = None

    def __enter__(self) -> HindsightServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        if self._log_dir is not None and exc_type is None:
            self._log_dir.cleanup()
            self._log_dir = None
