"""jedisos-db: the reference data layer and verification harness for the JediSOS database design.

Three rooms, each a subpackage, plus the command line:

- :mod:`jedisos_db.runtime`  the data layer JediSOS imports at run time;
- :mod:`jedisos_db.ops`      what runs a database: provisioning, start-up order, roles, budget, catalog;
- :mod:`jedisos_db.harness`  what measures and judges: data generators, benchmarks, probes, capacity;
- :mod:`jedisos_db.cli`      thin ``jedisos-db`` commands; all terminal rendering lives there.

The rooms import downwards only (cli -> harness -> ops -> runtime), enforced by import-linter.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jedisos-db")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
