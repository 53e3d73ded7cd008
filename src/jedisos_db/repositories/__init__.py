"""One repository per jedisos table (design §4). Each takes the jedisos AsyncEngine.

Every write validates its input in Python first (``jedisos_db.validation``) and runs in one
transaction, so a rejected write leaves nothing behind. Updates stamp ``updated_at`` themselves:
the design's DDL has no trigger for it.
"""

from jedisos_db.repositories.audit import AuditEvent, AuditLogRepository
from jedisos_db.repositories.cost import BudgetStatus, CostEvent, CostRepository
from jedisos_db.repositories.marketplace import MarketplaceRepository
from jedisos_db.repositories.mcp_servers import McpServerRepository, McpServerSpec
from jedisos_db.repositories.preferences import PreferencesRepository
from jedisos_db.repositories.schedules import ScheduleRepository
from jedisos_db.repositories.threads import ThreadRegistry
from jedisos_db.repositories.tools import ToolRepository, ToolSpec

__all__ = [
    "AuditEvent",
    "AuditLogRepository",
    "BudgetStatus",
    "CostEvent",
    "CostRepository",
    "MarketplaceRepository",
    "McpServerRepository",
    "McpServerSpec",
    "PreferencesRepository",
    "ScheduleRepository",
    "ThreadRegistry",
    "ToolRepository",
    "ToolSpec",
]
