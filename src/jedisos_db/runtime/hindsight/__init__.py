"""Hindsight, reached the way the design allows: its REST API (client), its own migrations and
server process (server), an offline embedding endpoint (embeddings), and its recorded HTTP
contract (contract). Nothing here issues SQL against schema ``hindsight``.
"""

from jedisos_db.runtime.hindsight.client import HindsightClient, bank_id_for
from jedisos_db.runtime.hindsight.errors import (
    BankNotFoundError,
    DocumentNotFoundError,
    HindsightBusyError,
    HindsightContractError,
    HindsightError,
    HindsightRequestError,
    HindsightServerError,
    HindsightUnavailableError,
    OperationTimeoutError,
)
from jedisos_db.runtime.hindsight.models import (
    UNSET,
    Bank,
    BankConfig,
    Chunk,
    DeleteResult,
    Document,
    DocumentDeleteResult,
    DocumentDetail,
    Entity,
    EntityRef,
    EntityState,
    Memory,
    MemoryUnit,
    Operation,
    Page,
    RecallResult,
    Reflection,
    RetainItem,
    RetainResult,
)
from jedisos_db.runtime.hindsight.retry import HindsightClientSettings, parse_retry_after

__all__ = [
    "UNSET",
    "Bank",
    "BankConfig",
    "BankNotFoundError",
    "Chunk",
    "DeleteResult",
    "Document",
    "DocumentDeleteResult",
    "DocumentDetail",
    "DocumentNotFoundError",
    "Entity",
    "EntityRef",
    "EntityState",
    "HindsightBusyError",
    "HindsightClient",
    "HindsightClientSettings",
    "HindsightContractError",
    "HindsightError",
    "HindsightRequestError",
    "HindsightServerError",
    "HindsightUnavailableError",
    "Memory",
    "MemoryUnit",
    "Operation",
    "OperationTimeoutError",
    "Page",
    "RecallResult",
    "Reflection",
    "RetainItem",
    "RetainResult",
    "bank_id_for",
    "parse_retry_after",
]
