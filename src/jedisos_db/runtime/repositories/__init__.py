"""One repository per jedisos table (design §4), all on one base (``base.Repository``). Each takes
the jedisos AsyncEngine.

Every write validates its input in Python first (``jedisos_db.runtime.repositories.validation``) and runs in one
transaction, so a rejected write leaves nothing behind: its own, or the caller's when a method is given
``session=`` (then it never commits; ``async with repo.begin() as s:`` spans several repositories).
Updates stamp ``updated_at`` themselves: the design's DDL has no trigger for it.
"""

from jedisos_db.runtime.repositories.audit import AuditEvent, AuditLogRepository
from jedisos_db.runtime.repositories.cost import BudgetStatus, CostEvent, CostRepository
from jedisos_db.runtime.repositories.marketplace import MarketplaceRepository
from jedisos_db.runtime.repositories.mcp_servers import McpServerRepository, McpServerSpec
from jedisos_db.runtime.repositories.preferences import PreferencesRepository
from jedisos_db.runtime.repositories.schedules import ScheduleRepository
from jedisos_db.runtime.repositories.threads import ThreadRegistry
from jedisos_db.runtime.repositories.tools import ToolRepository, ToolSpec
from jedisos_db.runtime.repositories.writer import Durability, EventWriter

__all__ = [
    "AuditEvent",
    "AuditLogRepository",
    "BudgetStatus",
    "CostEvent",
    "CostRepository",
    "Durability",
    "EventWriter",
    "MarketplaceRepository",
    "McpServerRepository",
    "McpServerSpec",
    "PreferencesRepository",
    "ScheduleRepository",
    "ThreadRegistry",
    "ToolRepository",
    "ToolSpec",
]
