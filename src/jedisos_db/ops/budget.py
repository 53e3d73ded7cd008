"""Connection budget: every pool's ceiling × its process count against what the server allows.

The design (§1 "충돌 방지 체크리스트", claim ``S1-max-connections-200`` in docs/design-claims.md) sets
``max_connections=200`` for three independent pools.
Whether that holds is arithmetic over the pools' *maximum* sizes, because a pool under load
grows to its maximum and the server refuses the connection after the last slot:

    demand = Σ max_size × processes        available = max_connections − reserved slots

Reserved slots are ``superuser_reserved_connections`` (3 by default) plus PG16+'s
``reserved_connections`` (0 by default): ordinary roles never get them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import ConfigError
from jedisos_db.runtime.owners import Owner
from jedisos_db.runtime.urls import DatabaseURL

# Hindsight 1.1.0 defaults (DESIGN.md, verified facts): asyncpg pool min 5 / max 100
# (HINDSIGHT_API_DB_POOL_MAX_SIZE). Its read pool (HINDSIGHT_API_READ_DB_POOL_MAX_SIZE, default 100) is
# opened ONLY when HINDSIGHT_API_READ_DATABASE_URL names a read database: hindsight_api/config.py reads
# ``read_database_url=os.getenv(ENV_READ_DATABASE_URL) or None`` and engine/memory_engine.py (~line 6389,
# ``if self._read_database_url:``) creates the second pool under that test alone; otherwise recall shares
# the main pool. A real server logs one "pool created" per process. So by default one Hindsight process
# holds at most 100 connections, not 100 + 100; the read pool counts only for a design that gives it one.
HINDSIGHT_POOL_MAX = 100
HINDSIGHT_READ_POOL_MAX = 100
HINDSIGHT_READ_DATABASE_ENV = "HINDSIGHT_API_READ_DATABASE_URL"
# The design's own numbers (§1 "커넥션 풀 분리"): LangGraph min 2 / max 10, JediSOS 5 + 10 overflow.
DESIGN_LANGGRAPH_MAX = 10
DESIGN_JEDISOS_POOL_SIZE = 5
DESIGN_JEDISOS_MAX_OVERFLOW = 10
DESIGN_MAX_CONNECTIONS = 200
POSTGRES_SUPERUSER_RESERVED = 3


@dataclass(frozen=True)
class PoolDemand:
    """One pool kind: its ceiling per process, and how many processes run it."""

    name: str
    max_per_process: int
    processes: int = 1
    source: str = ""
    owner: Owner | None = None
    """The schema owner whose pool this is (a design may put Hindsight's on a server of its own)."""

    def __post_init__(self) -> None:
        if self.max_per_process < 0:
            raise ConfigError(f"{self.name}.max_per_process", f"must be >= 0, got {self.max_per_process}")
        if self.processes < 0:
            raise ConfigError(f"{self.name}.processes", f"must be >= 0, got {self.processes}")

    @property
    def total(self) -> int:
        return self.max_per_process * self.processes


@dataclass(frozen=True)
class BudgetVerdict:
    pools: tuple[PoolDemand, ...]
    max_connections: int
    reserved: int

    @property
    def demand(self) -> int:
        return sum(p.total for p in self.pools)

    @property
    def available(self) -> int:
        return self.max_connections - self.reserved

    @property
    def fits(self) -> bool:
        return self.demand <= self.available

    @property
    def headroom(self) -> int:
        """Free slots at full load; negative means that many connections are refused."""
        return self.available - self.demand


def connection_budget(pools: Sequence[PoolDemand], *, max_connections: int,
                      superuser_reserved: int = POSTGRES_SUPERUSER_RESERVED,
                      reserved: int = 0) -> BudgetVerdict:
    """Sum the pools' ceilings and compare with the connections ordinary roles may open."""
    if max_connections <= 0:
        raise ConfigError("max_connections", f"must be > 0, got {max_connections}")
    if superuser_reserved < 0 or reserved < 0 or superuser_reserved + reserved >= max_connections:
        raise ConfigError("superuser_reserved_connections",
                          f"reserved slots ({superuser_reserved} + {reserved}) must be >= 0 and < max_connections")
    return BudgetVerdict(tuple(pools), max_connections, superuser_reserved + reserved)


def design_pools(*, jedisos_processes: int = 1, hindsight_processes: int = 1,
                 hindsight_pool_max: int = HINDSIGHT_POOL_MAX,
                 hindsight_read_database: bool = False,
                 hindsight_read_pool_max: int = HINDSIGHT_READ_POOL_MAX,
                 langgraph_max: int = DESIGN_LANGGRAPH_MAX, langgraph_processes: int | None = None,
                 jedisos_pool_size: int = DESIGN_JEDISOS_POOL_SIZE,
                 jedisos_max_overflow: int = DESIGN_JEDISOS_MAX_OVERFLOW) -> list[PoolDemand]:
    """The design's deployment: one Hindsight server process, JediSOS processes each holding a
    LangGraph pool and a SQLAlchemy engine (design §1), with Hindsight's real default pools.
    Hindsight's read pool is a demand only with ``hindsight_read_database`` (it has
    HINDSIGHT_API_READ_DATABASE_URL); ``hindsight_read_pool_max`` is its size then.
    Every size can be changed (a design file does); LangGraph runs in every JediSOS process unless told."""
    read_pool = [PoolDemand("hindsight asyncpg read pool", hindsight_read_pool_max, hindsight_processes,
                            f"HINDSIGHT_API_READ_DB_POOL_MAX_SIZE (default {HINDSIGHT_READ_POOL_MAX}; "
                            f"opened only with {HINDSIGHT_READ_DATABASE_ENV})", "hindsight")]
    return [
        PoolDemand("hindsight asyncpg pool", hindsight_pool_max, hindsight_processes,
                   f"HINDSIGHT_API_DB_POOL_MAX_SIZE (default {HINDSIGHT_POOL_MAX})", "hindsight"),
        *(read_pool if hindsight_read_database else []),
        PoolDemand("langgraph psycopg pool", langgraph_max,
                   jedisos_processes if langgraph_processes is None else langgraph_processes,
                   f"max_size (design §1: {DESIGN_LANGGRAPH_MAX})", "langgraph"),
        PoolDemand("jedisos sqlalchemy engine", jedisos_pool_size + jedisos_max_overflow, jedisos_processes,
                   f"pool_size {jedisos_pool_size} + max_overflow {jedisos_max_overflow} "
                   f"(design §1: {DESIGN_JEDISOS_POOL_SIZE} + {DESIGN_JEDISOS_MAX_OVERFLOW})", "jedisos"),
    ]


def design_verdict(*, jedisos_processes: int = 1, hindsight_processes: int = 1,
                   max_connections: int = DESIGN_MAX_CONNECTIONS) -> BudgetVerdict:
    """The design's claim "max_connections=200 is enough" (§1), checked with Hindsight's defaults
    (no read database, so no read pool)."""
    return connection_budget(design_pools(jedisos_processes=jedisos_processes,
                                          hindsight_processes=hindsight_processes),
                             max_connections=max_connections)


def max_processes(pools_per_process: Sequence[PoolDemand], fixed: Sequence[PoolDemand], *,
                  max_connections: int, superuser_reserved: int = POSTGRES_SUPERUSER_RESERVED) -> int:
    """How many JediSOS processes fit beside ``fixed`` pools (e.g. one Hindsight server)."""
    base = connection_budget(fixed, max_connections=max_connections, superuser_reserved=superuser_reserved)
    per = sum(p.max_per_process for p in pools_per_process)
    if per <= 0:
        raise ConfigError("pools_per_process", "must need at least one connection per process")
    return max(base.headroom // per, 0)


def server_verdict(url: DatabaseURL, pools: Sequence[PoolDemand]) -> BudgetVerdict:
    """``pools`` against the real server's ``max_connections`` and reserved slots."""
    with connect(url) as conn:
        rows = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('max_connections', 'superuser_reserved_connections', 'reserved_connections')").fetchall())
    return connection_budget(pools, max_connections=int(rows["max_connections"]),
                             superuser_reserved=int(rows.get("superuser_reserved_connections", 3)),
                             reserved=int(rows.get("reserved_connections", 0)))
