from __future__ import annotations

import pytest

from jedisos_db.runtime import urls
from jedisos_db.runtime.errors import ConfigError


def test_socket_form_survives_every_conversion() -> None:
    src = "postgresql://postgres:@/jedisos?host=/tmp/pg"
    assert urls.to_asyncpg(src).drivername == "postgresql+asyncpg"
    assert urls.to_asyncpg(src).query["host"] == "/tmp/pg"
    assert urls.parse(urls.to_libpq(src)).query["host"] == "/tmp/pg"
    assert urls.with_database(src, "other").database == "other"


def test_redact_hides_the_password() -> None:
    redacted = urls.redact("postgresql://u:s3cret@h:5432/db")
    assert "s3cret" not in redacted
    assert redacted.startswith("postgresql://u:***@h:5432/db")


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("redis://h/0", "is not PostgreSQL"),
        ("postgresql://u@h", "names no database"),
        ("postgresql:///db", "names no host"),
    ],
)
def test_bad_urls_name_the_field_and_rule(url: str, rule: str) -> None:
    with pytest.raises(ConfigError) as info:
        urls.parse(url, field="JEDISOS_DB_URL")
    assert info.value.field == "JEDISOS_DB_URL"
    assert rule in str(info.value)


def test_redact_does_not_invent_a_password() -> None:
    assert urls.redact("postgresql://postgres:@/db?host=/tmp/s") == "postgresql://postgres@/db?host=%2Ftmp%2Fs"
