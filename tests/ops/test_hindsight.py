"""Hindsight's migrations as ``ops.hindsight`` runs them: which interpreter, cold or warm, and how runs fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from jedisos_db.ops import catalog
from jedisos_db.ops import hindsight as hm
from jedisos_db.runtime.errors import HindsightServerError
from tests.plugins.databases import DatabaseFactory
from tests.plugins.hindsight import HindsightHome


def test_a_missing_interpreter_has_nothing_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$JEDISOS_HINDSIGHT_PYTHON naming no file answers False, as an interpreter without Hindsight does."""
    missing = tmp_path / "no-such-python"
    monkeypatch.setenv(hm.ENV_PYTHON, str(missing))
    assert hm.hindsight_python() == str(missing)
    assert hm.is_installed() is False
    assert hm.is_installed(str(tmp_path)) is False  # a directory: not executable either


def test_an_interpreter_without_hindsight_has_nothing_installed(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\nexit 1\n")
    python.chmod(0o755)
    assert hm.is_installed(str(python)) is False


@pytest.mark.e2e
@pytest.mark.usefixtures("hindsight_installed")
def test_warm_and_cold_runs_build_the_same_schema(database_factory: DatabaseFactory,
                                                  hindsight_home: HindsightHome) -> None:
    """The session's migrations run in the warm interpreter (tests/plugins/hindsight.py); a new interpreter
    per run builds the same catalog, so the warm one changes the time only."""
    warm, cold = hindsight_home(database_factory("hindsight_warm")), hindsight_home(database_factory("hindsight_cold"))
    warm_run = hm.run_migrations(warm)
    cold_run = hm.run_migrations(cold, warm=False)
    assert "completed successfully" in warm_run.output
    assert "completed successfully" in cold_run.output
    warm_catalog, cold_catalog = catalog.snapshot(warm, hm.SCHEMA), catalog.snapshot(cold, hm.SCHEMA)
    assert sum(kind == "relation" for kind, _ in warm_catalog) >= 20
    difference = catalog.diff(cold_catalog, warm_catalog)
    assert not difference, difference.render()
    assert hm.migration_version(warm) == hm.migration_version(cold)


@pytest.mark.e2e
@pytest.mark.usefixtures("hindsight_installed")
def test_a_warm_run_past_its_timeout_is_stopped_and_the_next_run_works(database_factory: DatabaseFactory,
                                                                       hindsight_home: HindsightHome) -> None:
    url = hindsight_home(database_factory("hindsight_warm_timeout"))
    with pytest.raises(HindsightServerError, match="did not finish in 0 s"):
        hm.run_migrations(url, timeout=0.001)
    after = hm.run_migrations(url)
    assert "completed successfully" in after.output
    assert hm.migration_version(url) is not None
