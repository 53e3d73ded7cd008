"""Hindsight's HTTP contract: the OpenAPI document of the installed server, recorded as a fixture.

The server's own ``app.openapi()`` is the contract (not its docs, not the design's snippet):
recording it from the installed ``hindsight-api-slim`` and checking the client against the
recorded file means a new Hindsight release that moves a route or renames a field breaks a
test instead of production. Recording builds the FastAPI app without starting it (no database,
no LLM, no embeddings are contacted), in Hindsight's interpreter, as a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from jedisos_db.ops.hindsight import ENV_PREFIX, hindsight_python
from jedisos_db.runtime.errors import HindsightServerError

DEFAULT_DIR = Path(__file__).resolve().parents[4] / "fixtures" / "hindsight"
"""``fixtures/hindsight`` of a source checkout (the fixture is not shipped in the wheel)."""

# Dummy settings: create_app() only reads them; nothing is contacted while the schema is built.
_RECORD_ENV = {
    "HINDSIGHT_API_DATABASE_URL": "postgresql://contract@127.0.0.1:9/contract",
    "HINDSIGHT_API_LLM_PROVIDER": "mock",
    "HINDSIGHT_API_RERANKER_PROVIDER": "rrf",
    "HINDSIGHT_API_EMBEDDINGS_PROVIDER": "tei",
    "HINDSIGHT_API_EMBEDDINGS_TEI_URL": "http://127.0.0.1:9",
    "HINDSIGHT_API_MCP_ENABLED": "false",
}

_RECORDER = """
import json, sys
from importlib.metadata import version
from hindsight_api import MemoryEngine
from hindsight_api.api import create_app
app = create_app(memory=MemoryEngine(run_migrations=False), http_api_enabled=True,
                 mcp_api_enabled=False, initialize_memory=False)
json.dump({"package_version": version("hindsight-api-slim"), "openapi": app.openapi()}, sys.stdout)
"""


def contract_path(version: str, directory: Path = DEFAULT_DIR) -> Path:
    return directory / f"openapi-{version}.json"


def fetch(python: str | None = None) -> tuple[str, dict[str, Any]]:
    """``(package version, OpenAPI document)`` of the Hindsight installed for ``python``."""
    import os

    python = python or hindsight_python()
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)} | _RECORD_ENV
    done = subprocess.run([python, "-c", _RECORDER], env=env, capture_output=True, text=True, check=False,
                          timeout=300, cwd=tempfile.gettempdir())
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-20:])
        raise HindsightServerError(f"could not build Hindsight's app to read its OpenAPI document:\n{tail}")
    payload = json.loads(done.stdout)
    return str(payload["package_version"]), dict(payload["openapi"])


def record(directory: Path = DEFAULT_DIR, python: str | None = None) -> Path:
    """Write the installed server's OpenAPI document to ``directory/openapi-<version>.json``."""
    version, document = fetch(python)
    path = contract_path(version, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Sorted and indented: a Hindsight upgrade then shows up as a readable diff in review.
    path.write_text(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return path


def load(path: Path) -> dict[str, Any]:
    """A recorded contract."""
    return dict(json.loads(path.read_text()))
