"""``python -m load [locust args…]``: start/migrate the database, then a headless bounded Locust run.

The database is ``--pg-dsn URL`` (or ``--dsn URL``) if given, else ``$JEDISOS_DB_URL``, else section 8's
``POSTGRES_*``, else the embedded server (started if needed); ``jedisos_db.ops.startup.up`` brings it to
head first. Locust gets it in ``$JEDISOS_DB_URL``, never on its command line. Reports land in
``reports/`` (CSV + HTML, see ``load/locust.conf``). Locust's exit code is returned: non-zero when
a threshold (``--max-fail-ratio``, ``--max-p95-ms``) is not met.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from jedisos_db.ops import provision, startup
from jedisos_db.runtime.urls import DatabaseURL

HERE = Path(__file__).resolve().parent


def locust_command(url: DatabaseURL, args: list[str]) -> tuple[list[str], dict[str, str]]:
    """Locust's argv and environment: the URL (with its password) only in the environment."""
    cmd = [sys.executable, "-m", "locust", "--config", str(HERE / "locust.conf"), "-f", str(HERE / "locustfile.py"),
           *args]
    return cmd, {**os.environ, provision.ENV_URL: url.libpq()}


def main(argv: list[str]) -> int:
    args = list(argv)
    dsn = None
    for flag in ("--pg-dsn", "--dsn"):
        if flag in args:
            i = args.index(flag)
            dsn = args[i + 1]
            del args[i:i + 2]
    report = startup.up(dsn)
    print(f"load target: {report.url} (PostgreSQL {report.server.server_version}, "
          f"pgvector {report.server.pgvector_version}, revision {report.revision})", flush=True)
    Path("reports").mkdir(exist_ok=True)
    cmd, env = locust_command(report.url, args)
    return subprocess.call(cmd, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
