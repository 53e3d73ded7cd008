"""Where the database comes from: embedded (default), a URL, or Docker (opt-in)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jedisos_db.ops import provision, startup
from jedisos_db.runtime import config, urls
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import ConfigError, DatabaseUnavailableError, DockerUnavailableError
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


def _pair_then_fail(seen: dict[DatabaseURL, tuple[str, ...]]) -> None:
    """Two private servers at once; records what each reports, stops the inner one, then fails in the outer."""
    query = ("SELECT current_setting('max_connections'), current_setting('data_directory'), "
             "system_identifier::text FROM pg_control_system()")
    with provision.private_server(provision.ServerSettings(max_connections=20)) as first:
        with provision.private_server(provision.ServerSettings(max_connections=30)) as second:
            for url in (first, second):
                with connect(url) as conn:
                    row = conn.execute(query).fetchone()
                assert row is not None
                seen[url] = tuple(map(str, row))
        with pytest.raises(DatabaseUnavailableError):
            connect(second).close()
        raise RuntimeError("the block failed")


def test_a_private_server_is_stopped_and_removed_when_its_block_ends_even_on_failure() -> None:
    """Two private servers are two clusters; each is gone (process and directory) when its block ends."""
    seen: dict[DatabaseURL, tuple[str, ...]] = {}
    with pytest.raises(RuntimeError, match="the block failed"):
        _pair_then_fail(seen)
    first, second = seen.values()
    assert (first[0], second[0]) == ("20", "30")
    assert first[2] != second[2]
    for url, (_, data_dir, _) in seen.items():
        assert not Path(data_dir).exists()
        with pytest.raises(DatabaseUnavailableError):
            connect(url).close()


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
    given = urls.parse("postgresql://typed@h/x")
    assert provision.resolve_target(given) is given  # a parsed URL is taken as it is, not parsed again
    env.setenv(provision.ENV_URL, "nonsense")
    with pytest.raises(ConfigError, match="JEDISOS_DB_URL"):
        provision.resolve_target(None)
    with pytest.raises(ConfigError, match="--pg-dsn: names no database"):
        provision.given_target("postgresql://u@h", field="--pg-dsn")


@pytest.mark.claim("S1-vector-once")
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


# --- settings that would keep the server from starting (issue 11, point 1) -------------------------


@pytest.fixture(scope="module")
def settings_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[provision.EmbeddedServer]:
    """A second embedded server of its own: these tests break and repair its settings."""
    server = provision.EmbeddedServer(tmp_path_factory.mktemp("settings"))
    server.start()
    yield server
    server.stop()


def _auto_conf(server: provision.EmbeddedServer) -> str:
    return (server.data_dir / "postgresql.auto.conf").read_text()


@pytest.mark.parametrize("max_connections", [1, 2, 3])
def test_up_refuses_too_few_connections_in_one_line_and_the_next_up_works(
        settings_server: provision.EmbeddedServer, no_target_env: pytest.MonkeyPatch, max_connections: int) -> None:
    before = _auto_conf(settings_server)
    with pytest.raises(ConfigError, match=r"^max_connections: must exceed superuser_reserved_connections") as caught:
        startup.up(data_dir=settings_server.data_dir,
                   settings=provision.ServerSettings(max_connections=max_connections))
    assert "\n" not in str(caught.value)
    assert _auto_conf(settings_server) == before  # nothing persisted
    report = startup.up(data_dir=settings_server.data_dir)
    assert report.embedded
    assert report.revision == migrations.head()
    assert report.server.max_connections == provision.ServerSettings().max_connections


def test_settings_are_checked_against_pg_settings_before_anything_is_written(empty_db: DatabaseURL) -> None:
    with connect(empty_db) as conn:
        rows = conn.execute("SELECT setting FROM pg_settings WHERE name = ANY(%s)",
                            [list(provision.RESERVED_CONNECTIONS)]).fetchall()
        reserved = sum(int(setting) for (setting,) in rows)
        lowest = reserved + provision.ADMIN_CONNECTIONS + 1
        assert provision.check_settings(conn, {"max_connections": str(lowest)})["max_connections"]
        cases = {
            ("max_connections", str(lowest - 1)): f"at least {lowest}",
            ("no_such_setting", "1"): "is not a PostgreSQL setting",
            ("work_mem", "-5"): "must be between",
            ("wal_level", "loud"): "must be one of minimal, replica, logical",
        }
        for (name, value), rule in cases.items():
            with pytest.raises(ConfigError, match=rf"^{name}: .*{rule}"):
                provision.check_settings(conn, {name: value})


def test_a_setting_that_stops_the_server_is_rolled_back(settings_server: provision.EmbeddedServer) -> None:
    before = _auto_conf(settings_server)
    bad = provision.ServerSettings(shared_preload_libraries="no_such_library")
    with pytest.raises(ConfigError, match=r"^shared_preload_libraries: kept the server from starting "
                                          r"\(FATAL: .*no_such_library.*\); rolled back") as caught:
        provision.EmbeddedServer(settings_server.data_dir, bad).start()
    assert "\n" not in str(caught.value)
    assert _auto_conf(settings_server) == before
    url = settings_server.url()
    assert url is not None, "the server runs again, with the previous settings"
    assert provision.server_info(url).shared_preload_libraries == "pg_stat_statements"


def test_a_run_killed_mid_restart_is_rolled_back_by_the_next_start(settings_server: provision.EmbeddedServer) -> None:
    """A previous run persisted a bad setting and died before it could undo it: the saved copy undoes it."""
    conf = settings_server.data_dir / "postgresql.auto.conf"
    before = conf.read_text()
    settings_server.stop()
    (settings_server.data_dir / "postgresql.auto.conf.jedisos-previous").write_text(before)
    with conf.open("a") as f:
        f.write("shared_preload_libraries = 'no_such_library'\n")
    said: list[str] = []
    url = provision.EmbeddedServer(settings_server.data_dir, progress=said.append).start()
    assert provision.server_info(url).shared_preload_libraries == "pg_stat_statements"
    assert conf.read_text() == before
    assert [line for line in said if line.startswith("rolled back shared_preload_libraries")], said


def test_a_server_that_cannot_start_says_why_in_a_few_lines_every_time(
        settings_server: provision.EmbeddedServer) -> None:
    conf = settings_server.data_dir / "postgresql.auto.conf"
    before = conf.read_text()
    settings_server.stop()
    with conf.open("a") as f:
        f.write("shared_preload_libraries = 'no_such_library'\n")
    try:
        for _ in range(2):  # the second try used to say `did not start ()`
            with pytest.raises(DatabaseUnavailableError, match=r"did not start: FATAL: .*no_such_library") as caught:
                provision.EmbeddedServer(settings_server.data_dir).start()
            assert "\n" not in str(caught.value)
            assert str(caught.value).count("FATAL") <= provision.LOG_EXCERPT_LINES
    finally:
        conf.write_text(before)
    assert provision.EmbeddedServer(settings_server.data_dir).start() == settings_server.url()


def test_log_excerpt_keeps_only_the_last_severe_lines() -> None:
    log = "\n".join([*(f"2026-11-26 10:00:0{i} UTC [9] LOG:  redo at 0/{i}" for i in range(9)),
                     "2026-11-26 10:00:10 UTC [9] FATAL:  one", "x ERROR:  two", "y PANIC:  three"])
    assert provision.log_excerpt(log, lines=2) == "ERROR: two | PANIC: three"
    assert provision.log_excerpt("LOG:  all fine") == ""
    with pytest.raises(ConfigError, match="start_timeout"):
        provision.EmbeddedServer(start_timeout=0)


def test_a_list_of_preload_libraries_is_stored_as_a_list(settings_server: provision.EmbeddedServer) -> None:
    """``"a,b"`` used to be stored as the one quoted name ``"a,b"`` (and then the server would not start)."""
    two = provision.ServerSettings(shared_preload_libraries="pg_stat_statements, auto_explain")
    try:
        url = provision.EmbeddedServer(settings_server.data_dir, two).start()
        assert provision.server_info(url).shared_preload_libraries == "pg_stat_statements, auto_explain"
        assert "shared_preload_libraries = 'pg_stat_statements, auto_explain'" in _auto_conf(settings_server)
        with connect(url) as conn:  # both loaded: auto_explain's parameters exist only once it is
            assert conn.execute("SHOW auto_explain.log_min_duration").fetchone() == ("-1",)
        # The same list written differently is no change: no restart.
        again = provision.EmbeddedServer(settings_server.data_dir, provision.ServerSettings(
            shared_preload_libraries="pg_stat_statements,auto_explain"))
        with connect(url) as conn:
            started = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
        with connect(again.start()) as conn:
            assert conn.execute("SELECT pg_postmaster_start_time()").fetchone() == started
    finally:
        provision.EmbeddedServer(settings_server.data_dir).start()  # back to the default one library
    restored = settings_server.url()
    assert restored is not None
    assert provision.server_info(restored).shared_preload_libraries == "pg_stat_statements"
