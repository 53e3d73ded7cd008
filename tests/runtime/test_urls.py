from __future__ import annotations

import logging

import pytest

from jedisos_db.runtime import urls
from jedisos_db.runtime.errors import ConfigError


def test_socket_form_survives_every_conversion() -> None:
    src = urls.parse("postgresql://postgres:@/jedisos?host=/tmp/pg")
    assert src.asyncpg().drivername == "postgresql+asyncpg"
    assert src.asyncpg().query["host"] == "/tmp/pg"
    assert src.psycopg().drivername == "postgresql+psycopg"
    assert urls.parse(src.libpq()) == src
    assert src.with_database("other").database == "other"
    assert (src.host, src.database, src.username, src.port) == ("/tmp/pg", "jedisos", "postgres", None)


def test_every_printed_form_hides_the_password(caplog: pytest.LogCaptureFixture) -> None:
    url = urls.parse("postgresql://u:s3cret@h:5432/db")
    caplog.set_level(logging.INFO)
    logging.getLogger("test").info("target %s %r", url, url)
    for shown in (str(url), repr(url), f"{url}", f"{url!r}", url.redacted(), caplog.text, str([url])):
        assert "s3cret" not in shown
        assert "u:***@h:5432/db" in shown
    assert "s3cret" in url.libpq()  # the one form meant for a driver
    assert url.has_password


def test_urls_are_values() -> None:
    """Frozen and hashable: equal text gives equal URLs, usable as dict keys and set members."""
    a, b = urls.parse("postgresql://u:pw@h/db"), urls.parse("postgresql+asyncpg://u:pw@h/db")
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b, a.with_database("x")}) == 2
    with pytest.raises(AttributeError):
        a._url = b._url  # type: ignore[misc]


def test_with_user_replaces_the_role_and_its_password() -> None:
    admin = urls.parse("postgresql://admin:adminpw@h/db")
    as_app = admin.with_user("app", "apppw")
    assert (as_app.username, as_app.database) == ("app", "db")
    assert "apppw" in as_app.libpq()
    assert "adminpw" not in as_app.libpq()
    assert not admin.with_user("app").has_password  # never the admin's password under another name


def test_with_query_sets_a_parameter() -> None:
    url = urls.parse("postgresql://u@h/db").with_query(application_name="probe")
    assert url.query["application_name"] == "probe"
    assert "application_name=probe" in url.libpq()


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
    url = urls.parse("postgresql://postgres:@/db?host=/tmp/s")
    assert url.redacted() == "postgresql://postgres@/db?host=%2Ftmp%2Fs"
    assert not url.has_password
