"""Where the database comes from: embedded (default), a URL, or Docker (opt-in)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jedisos_db.ops import provision
from jedisos_db.runtime import config
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import DockerUnavailableError
from jedisos_db.runtime.urls import DatabaseURL


@pytest.fixture
def no_target_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment that names no database (no JEDISOS_DB_URL, no POSTGRES_*)."""
    for name in config.ENV_NAMES.values():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_embedded_server_applies_settings_and_is_reused(tmp_path_factory: pytest.TempPathFactory,
                                                        no_target_env: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path_factory.mktemp("emb")
    settings = provision.ServerSettings(max_connections=57)
    server = provision.EmbeddedServer(data_dir, settings)
    try:
        url = server.start()
        info = provision.server_info(url)
        assert info.max_connections == 57
        assert "pg_stat_statements" in info.shared_preload_libraries
        assert server.start() == url  # second start reuses the running server
        assert server.url() == url
        # Nothing named in the environment: the resolver falls back to this server's jedisos database.
        assert provision.resolve_target(None, data_dir=data_dir, settings=settings) == url.with_database(
            provision.EMBEDDED_DATABASE)
    finally:
        assert server.stop() is True
    assert server.url() is None
    assert server.stop() is False


def test_data_dir_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(provision.ENV_DATA_DIR, str(tmp_path / "x"))
    assert provision.default_data_dir() == tmp_path / "x"
    monkeypatch.delenv(provision.ENV_DATA_DIR)
    assert provision.default_data_dir().parts[-2:] == ("jedisos-db", "pg18")


def test_resolve_target_prefers_dsn_then_jedisos_db_url_then_postgres_parts(no_target_env: pytest.MonkeyPatch) -> None:
    """--dsn > $JEDISOS_DB_URL > section 8's POSTGRES_* (the embedded server is the test above)."""
    env = no_target_env
    assert provision.given_target(None) is None
    for name, value in {"POSTGRES_USER": "pg", "POSTGRES_PASSWORD": "pw", "POSTGRES_HOST": "db.parts",
                        "POSTGRES_DB": "partsdb"}.items():
        env.setenv(name, value)
    assert provision.resolve_target(None).libpq() == "postgresql://pg:pw@db.parts:5432/partsdb"
    env.setenv(provision.ENV_URL, "postgresql://env@db.example/envdb")
    assert str(provision.resolve_target(None)) == "postgresql://env@db.example/envdb"
    assert str(provision.resolve_target("postgresql://a@h/x")) == "postgresql://a@h/x"
    given = provision.urls.parse("postgresql://typed@h/x")
    assert provision.resolve_target(given) is given  # a parsed URL is taken as it is, not parsed again
    env.setenv(provision.ENV_URL, "nonsense")
    with pytest.raises(provision.urls.ConfigError, match="JEDISOS_DB_URL"):
        provision.resolve_target(None)
    with pytest.raises(provision.urls.ConfigError, match="--pg-dsn: names no database"):
        provision.given_target("postgresql://u@h", field="--pg-dsn")


def test_bootstrap_puts_vector_in_public_and_is_idempotent(empty_db: DatabaseURL) -> None:
    provision.bootstrap(empty_db)  # empty_db is bootstrapped already: this is the rerun
    with connect(empty_db) as conn:
        ext = conn.execute(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE e.extname = 'vector'"
        ).fetchall()
        schema = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'jedisos'").fetchone()
    assert ext == [("public",)]
    assert schema is not None


@pytest.mark.docker
def test_docker_source_or_the_reason_it_is_unavailable() -> None:
    """Opt-in Docker source: migrates a pgvector/pgvector:pg18 container, or skips saying why."""
    try:
        with provision.docker_server() as url:
            provision.bootstrap(url)
            migrations.upgrade(url)
            assert migrations.current(url) == migrations.head()
    except DockerUnavailableError as exc:
        pytest.skip(f"Docker source unavailable: {exc}")
