"""Record the installed Hindsight server's OpenAPI document into fixtures/hindsight/.

    python scripts/record_hindsight_contract.py [--out DIR]

Needs the [hindsight] extra (or JEDISOS_HINDSIGHT_PYTHON pointing at an interpreter that has
hindsight-api-slim). Commit the written file: tests/hindsight/test_client_contract.py checks
the client against it, and tests/hindsight/test_e2e.py checks the running server agrees.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jedisos_db.harness.hindsight import contract


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=contract.DEFAULT_DIR, help="directory to write into")
    args = parser.parse_args()
    path = contract.record(args.out)
    print(f"recorded {path}")


if __name__ == "__main__":
    main()
