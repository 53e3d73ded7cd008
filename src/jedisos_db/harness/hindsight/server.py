"""The real Hindsight server, run from this machine: its migrations and its API process.

Hindsight owns schema ``hindsight``: its own Alembic migrations create it and its own asyncpg
pools use it. This module never touches that schema by SQL; it only starts Hindsight's own
entry points as subprocesses (design §1: "Hindsight 서버 시작 → Alembic으로 hindsight 스키마
마이그레이션"). Subprocesses because Hindsight pulls in a large import graph (litellm, fastapi,
psycopg2) that has no business in the caller's process, and because the interpreter may be a
separate virtual environment (``JEDISOS_HINDSIGHT_PYTHON``) when its pins clash with ours.

Offline by construction: mock LLM, ``rrf`` reranker, and our own TEI-compatible embedding
endpoint on loopback (:mod:`jedisos_db.harness.hindsight.embeddings`). Every database connection
Hindsight opens carries ``application_name`` ``hindsight-api`` / ``hindsight-migrations``
so the server-side statement log can attribute each statement to its owner.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from jedisos_db.harness.hindsight.embeddings import EmbeddingServer
from jedisos_db.ops import budget
from jedisos_db.ops.hindsight import (
    APPLICATION_NAME,
    ENV_PYTHON,
    LOG_TAIL_LINES,
    SCHEMA,
    _clean_environ,
    _tail,
    hindsight_python,
    tagged_url,
)
from jedisos_db.runtime.errors import HindsightServerError
from jedisos_db.runtime.urls import DatabaseURL

READ_DATABASE_URL = budget.HINDSIGHT_READ_DATABASE_ENV
"""Hindsight's setting naming a separate database for recall; only with it does Hindsight open its read pool."""


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

    def __init__(self, database_url: DatabaseURL, *, schema: str = SCHEMA, settings: HindsightSettings | None = None,
                 embeddings_url: str | None = None, log_path: Path | None = None, python: str | None = None,
                 host: str = "127.0.0.1", port: int | None = None, env: Mapping[str, str] | None = None) -> None:
        self.database_url = database_url
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
        return f"HindsightServer({self.database_url.redacted()!r}, schema={self.schema!r}, {state})"

    @property
    def pools_max(self) -> int:
        """The most connections this server's pools may hold: its pool's maximum, plus its read pool's only when
        it is given a read database. Hindsight 1.1.0 opens the read pool for ``HINDSIGHT_API_READ_DATABASE_URL``
        alone (``MemoryEngine.initialize``; it logs one "PostgreSQL pool created" per pool); without it, recall
        shares the main pool and ``HINDSIGHT_API_READ_DB_POOL_MAX_SIZE`` opens nothing."""
        read = self.settings.read_pool_max_size if self.extra_env.get(READ_DATABASE_URL) else 0
        return self.settings.pool_max_size + read

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
