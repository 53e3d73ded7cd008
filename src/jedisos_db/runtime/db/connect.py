"""Short-lived psycopg connections for one-off work (set-up, catalog reads), with one error on failure."""

from __future__ import annotations

import math
from typing import Any

import psycopg

from jedisos_db.runtime.config import DEFAULT_CONNECT_TIMEOUT_S, check_wait
from jedisos_db.runtime.db import faults
from jedisos_db.runtime.urls import DatabaseURL

ADMIN_APPLICATION_NAME = "jedisos-db-admin"


def libpq_connect_timeout(seconds: float) -> int:
    """libpq's ``connect_timeout``: whole seconds, and values below 2 are raised to 2 by libpq itself."""
    return max(2, math.ceil(check_wait("connect_timeout", seconds)))


def connect(url: DatabaseURL, *, autocommit: bool = True, application_name: str = ADMIN_APPLICATION_NAME,
            connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S, **kwargs: Any) -> psycopg.Connection[Any]:
    """A psycopg connection; failing to reach the server is a ``DatabaseUnavailableError`` (retryable)."""
    with faults.translating(url, faults.CONNECTING):
        return psycopg.connect(url.libpq(), autocommit=autocommit, application_name=application_name,
                               connect_timeout=libpq_connect_timeout(connect_timeout), **kwargs)
