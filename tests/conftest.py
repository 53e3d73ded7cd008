"""Root conftest: fixtures live in tests/plugins/, one module per concern (as psycopg's suite does).

- plugins/server.py    the PostgreSQL server of the session (embedded by default, --dsn for any other)
- plugins/databases.py isolated databases: a migrated template cloned per module, empty ones on demand
- plugins/roles.py     the least-privilege owner roles (jedisos_app, langgraph_app, hindsight_app), per session
- plugins/hindsight.py the real Hindsight server (migrations + API, offline) for e2e and conformance tests
- plugins/tables.py    ``clean`` (module engine with the jedisos tables emptied), ``cipher``

- jedisos_db.harness.verify.plugin  the ``claim("ID")`` marker and the ``claim`` fixture: what a test
  found about a design claim, collected by ``jedisos-db verify`` (docs/design-claims.md lists the ids)

Markers are declared in pyproject.toml ([tool.pytest.ini_options] markers), except ``claim``, which the
verify plugin declares so that it works in any pytest run.
"""

pytest_plugins = [
    "tests.plugins.server",
    "tests.plugins.databases",
    "tests.plugins.tables",
    "tests.plugins.roles",
    "tests.plugins.hindsight",
    "jedisos_db.harness.verify.plugin",
    "pytester",
]
