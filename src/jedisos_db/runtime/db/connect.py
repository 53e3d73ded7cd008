"""Short-lived psycopg connections for one-off work (set-up, catalog reads), with one error on failure."""

from __future__ import annotations

from typing import Any

import psycopg

from jedisos_db.runtime.errors import DatabaseUnavailableError
from jedisos_db.runtime.urls import DatabaseURL

ADMIN_APPLICATION_NAME = "jedisos-db-admin"


def connect(url: DatabaseURL, *, autocommit: bool = True, application_name: str = ADMIN_APPLICATION_NAME,
            **kwargs: Any) -> psycopg.Connection[Any]:
    """A psycopg connection, with connection failures turned into one readable error."""
    try:
        return psycopg.connect(url.libpq(), autocommit=autocommit, application_name=application_name,
                               connect_timeout=10, **kwargs)
    except psycopg.OperationalError as exc:
        reason = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
        raise DatabaseUnavailableError(f"cannot connect to {url}: {reason}") from None
