"""jedisos-db: the reference data layer and verification harness for the JediSOS database design."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jedisos-db")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

SCHEMA = "jedisos"
"""The one schema this project owns. Hindsight owns ``hindsight``, LangGraph owns ``langgraph``."""

__all__ = ["SCHEMA", "__version__"]
