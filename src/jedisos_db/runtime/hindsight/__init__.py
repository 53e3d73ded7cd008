"""Hindsight, reached the way the design allows: its REST API (client), its own migrations and
server process (server), an offline embedding endpoint (embeddings), and its recorded HTTP
contract (contract). Nothing here issues SQL against schema ``hindsight``.
"""

from jedisos_db.runtime.errors import (
    BankNotFoundError,
    HindsightContractError,
    HindsightError,
    HindsightRequestError,
    HindsightServerError,
    HindsightUnavailableError,
)
from jedisos_db.runtime.hindsight.client import (
    Bank,
    DeleteResult,
    Entity,
    HindsightClient,
    Memory,
    MemoryUnit,
    Page,
    Reflection,
    RetainResult,
    bank_id_for,
)

__all__ = [
    "Bank",
    "BankNotFoundError",
    "DeleteResult",
    "Entity",
    "HindsightClient",
    "HindsightContractError",
    "HindsightError",
    "HindsightRequestError",
    "HindsightServerError",
    "HindsightUnavailableError",
    "Memory",
    "MemoryUnit",
    "Page",
    "Reflection",
    "RetainResult",
    "bank_id_for",
]
