"""Hindsight's schema as its real migrations build it, against what design §2 documents.

The design's §2-1 table list, its key columns and §2-2's graph (fact types, typed edges, the
embedding's dimension) are compared with the catalog of a real server's schema ``hindsight``.
Needs ``hindsight-api-slim`` (``nox -s e2e``); without it each test skips with the reason.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest

from jedisos_db.harness.hindsight import server as hs
from jedisos_db.harness.hindsight.embeddings import EmbeddingServer
from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.ops import hindsight as hm
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import DatabaseFactory
from tests.plugins.hindsight import HindsightHome, RunningHindsight

# design §2-1 "테이블 목록 (소스코드 기반, 7개 테이블)": the tables it lists, each with the key columns it names
# (and the type where it names one).
DESIGN_TABLES: dict[str, dict[str, str | None]] = {
    "banks": {"bank_id": None, "disposition": "jsonb", "background": None},
    "memory_units": {"id": None, "text": None, "embedding": None, "fact_type": None, "confidence_score": None},
    "documents": {"id": None, "bank_id": None, "original_text": None, "content_hash": None},
    "entities": {"id": None, "canonical_name": None, "bank_id": None, "mention_count": None},
    "unit_entities": {"unit_id": None, "entity_id": None},
    "entity_cooccurrences": {"entity_id_1": None, "entity_id_2": None, "cooccurrence_count": None},
    "memory_links": {"from_unit_id": None, "to_unit_id": None, "link_type": None, "weight": None, "entity_id": None},
    "alembic_version": {"version_num": None},
}
DESIGN_TABLE_COUNT = 7
"""The count the section's title gives ("7개 테이블"); the list itself has eight rows."""
DESIGN_FACT_TYPES = ("world", "bank", "opinion", "observation")
DESIGN_FACT_TYPE_GLOSS = {"bank": "experience"}
"""The design glosses its Bank network as "경험" (experience), the name the real schema stores."""
DESIGN_LINK_TYPES = ("temporal", "semantic", "entity", "causes", "caused_by", "enables", "prevents")
DESIGN_EMBEDDING_DIMENSION = 384
DESIGN_EMBEDDING_VARIABLE = "HINDSIGHT_API_EMBEDDING_MODEL"
"""design §2-2 "임베딩 차원": the variable it says the dimension follows."""
OTHER_MODEL_DIMENSION = 768
# design §2-2 "그래프 검색 알고리즘": the modules it names, in hindsight_api's search package.
DESIGN_RETRIEVAL_MODULES = ("graph_retrieval", "link_expansion_retrieval", "fusion", "mpfp_retrieval")
SEARCH_PACKAGE = "hindsight_api.engine.search"

_QUOTED = re.compile(r"'([a-z_]+)'")


def _tables(url: DatabaseURL) -> set[str]:
    with connect(url) as conn:
        return {str(r[0]) for r in conn.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = %s::regnamespace AND c.relkind IN ('r', 'p')",
            [hm.SCHEMA]).fetchall()}


def _columns(url: DatabaseURL) -> dict[tuple[str, str], str]:
    with connect(url) as conn:
        return {(str(t), str(c)): str(d) for t, c, d in conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = %s",
            [hm.SCHEMA]).fetchall()}


def _checked_values(url: DatabaseURL, table: str, column: str) -> set[str]:
    """The values the CHECK constraints of ``table`` allow for ``column`` (quoted words of their definition)."""
    with connect(url) as conn:
        definitions = [str(r[0]) for r in conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c'",
            [f"{hm.SCHEMA}.{table}"]).fetchall()]
    return {v for d in definitions if column in d for v in _QUOTED.findall(d)}


def _column_type(url: DatabaseURL, table: str, column: str) -> str | None:
    with connect(url) as conn:
        row = conn.execute(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = %s::regclass AND a.attname = %s AND NOT a.attisdropped",
            [f"{hm.SCHEMA}.{table}", column]).fetchone()
    return str(row[0]) if row else None


@pytest.mark.e2e
@pytest.mark.claim("S2-hindsight-tables", shows="fails")
def test_the_design_table_list_is_not_hindsights_schema(hindsight_server: RunningHindsight,
                                                        claim: ClaimRecorder) -> None:
    """design §2-1: "7 tables" (eight rows listed) against the tables the real migrations create."""
    real = _tables(hindsight_server.database_url)
    documented = set(DESIGN_TABLES)
    missing, unlisted = sorted(documented - real), sorted(real - documented)
    claim.figures(documented_count=DESIGN_TABLE_COUNT, documented_listed=len(documented), real_tables=len(real),
                  documented_missing=len(missing), real_unlisted=len(unlisted))
    assert real != documented, f"the real schema is exactly the documented list: {sorted(real)}"
    claim.fails(f"the design counts {DESIGN_TABLE_COUNT} and lists {len(documented)} tables; Hindsight's migrations "
                f"create {len(real)}: {len(unlisted)} unlisted (e.g. {', '.join(unlisted[:4])})"
                + (f", and {', '.join(missing)} documented but absent" if missing else ", every listed one present"),
                fix="head never depends on Hindsight's tables: it goes through the REST API only")


@pytest.mark.e2e
@pytest.mark.claim("S2-hindsight-columns")
def test_the_documented_key_columns_exist(hindsight_server: RunningHindsight, claim: ClaimRecorder) -> None:
    """design §2-1 "주요 컬럼": every key column the design names exists in the real table, with the type it names."""
    real = _columns(hindsight_server.database_url)
    listed = [(t, c, want) for t, cols in DESIGN_TABLES.items() for c, want in cols.items()]
    missing = [f"{t}.{c}" for t, c, _ in listed if (t, c) not in real]
    wrong = [f"{t}.{c} is {real[(t, c)]}, not {want}" for t, c, want in listed
             if want and (t, c) in real and real[(t, c)] != want]
    claim.figures(documented_columns=len(listed), missing_columns=len(missing), wrong_types=len(wrong))
    if missing or wrong:
        claim.fails(f"{len(missing)} of the {len(listed)} key columns the design names are not in Hindsight's "
                    f"tables ({', '.join(missing[:6])}){'; ' + '; '.join(wrong) if wrong else ''}",
                    fix="head reads Hindsight's data through its API models (runtime/hindsight/models.py), "
                        "never its columns")
    else:
        claim.holds(f"all {len(listed)} key columns the design names exist with the documented types")


@pytest.mark.e2e
@pytest.mark.claim("S2-fact-types")
def test_fact_types_are_the_four_networks(hindsight_server: RunningHindsight, claim: ClaimRecorder) -> None:
    """design §2-2 "4-네트워크 모델": ``memory_units.fact_type`` takes world, bank, opinion, observation."""
    real = _checked_values(hindsight_server.database_url, "memory_units", "fact_type")
    assert real, "no CHECK constraint names the fact types of memory_units: nothing to compare"
    documented = {DESIGN_FACT_TYPE_GLOSS.get(t, t) for t in DESIGN_FACT_TYPES}
    absent, extra = sorted(documented - real), sorted(real - documented)
    claim.figures(documented_fact_types=len(documented), real_fact_types=len(real))
    if not absent and not extra:
        claim.holds(f"memory_units.fact_type is checked to {', '.join(sorted(real))}, the four documented networks "
                    f"(bank stored as experience)")
    else:
        besides = f", and {', '.join(extra)} besides" if extra else ""
        claim.fails(f"memory_units.fact_type is checked to {len(real)} networks ({', '.join(sorted(real))}), not the "
                    f"design's four: no {', '.join(absent) or '-'}{besides}",
                    fix="head's client takes its fact types from the recorded API contract (hindsight/models.py)")


@pytest.mark.e2e
@pytest.mark.claim("S2-link-types")
def test_memory_links_carry_the_seven_edge_types(hindsight_server: RunningHindsight, claim: ClaimRecorder) -> None:
    """design §2-2: ``memory_links.link_type`` is one of seven typed edges."""
    real = _checked_values(hindsight_server.database_url, "memory_links", "link_type")
    assert real, "no CHECK constraint names the link types of memory_links: nothing to compare"
    documented = set(DESIGN_LINK_TYPES)
    claim.figures(documented_link_types=len(documented), real_link_types=len(real))
    if real == documented:
        claim.holds(f"memory_links.link_type is checked to exactly the {len(real)} documented edge types")
    else:
        extra, absent = sorted(real - documented), sorted(documented - real)
        claim.partial(f"memory_links.link_type allows {len(real)} types, not the documented {len(documented)}"
                      + (f"; also {', '.join(extra)}" if extra else "")
                      + (f"; not {', '.join(absent)}" if absent else ""))


@pytest.mark.e2e
@pytest.mark.claim("S2-embedding-dim-384")
def test_the_default_embedding_column_is_vector_384(database_factory: DatabaseFactory, hindsight_home: HindsightHome,
                                                    claim: ClaimRecorder) -> None:
    """design §2-2: Hindsight's migrations alone, with no embeddings provider told anything, make
    ``memory_units.embedding`` a ``vector(384)`` (in a database on the server the run places Hindsight on)."""
    url = hindsight_home(database_factory("hindsight_default_dimension"))
    hm.run_migrations(url)
    found = _column_type(url, "memory_units", "embedding")
    claim.figures(documented_dimension=DESIGN_EMBEDDING_DIMENSION, real_column_type=str(found))
    assert found == f"vector({DESIGN_EMBEDDING_DIMENSION})", (
        f"Hindsight's migrations made memory_units.embedding a {found}, not vector({DESIGN_EMBEDDING_DIMENSION})")
    claim.holds(f"Hindsight's own migrations made hindsight.memory_units.embedding a {found}")


@pytest.mark.e2e
@pytest.mark.claim("S2-embedding-dim-follows-model")
def test_the_embedding_column_follows_the_models_dimension(database_factory: DatabaseFactory, tmp_path: Path,
                                                           hindsight_home: HindsightHome,
                                                           claim: ClaimRecorder) -> None:
    """design §2-2: a server started the design's way (migrating its schema on start, Hindsight's default)
    with an embeddings model of another dimension sizes the column to it; and is
    ``HINDSIGHT_API_EMBEDDING_MODEL`` the variable that chooses the model?"""
    url = hindsight_home(database_factory("hindsight_other_dimension"))
    settings = hs.HindsightSettings(run_migrations_on_startup=True)
    with (EmbeddingServer(dimension=OTHER_MODEL_DIMENSION) as model,
          hs.HindsightServer(url, settings=settings, embeddings_url=model.url, log_path=tmp_path / "api.log")):
        found = _column_type(url, "memory_units", "embedding")
    variables = {name for name in _hindsight_variables() if "EMBEDDING" in name and name.endswith("_MODEL")}
    claim.figures(model_dimension=OTHER_MODEL_DIMENSION, real_column_type=str(found),
                  documented_variable_exists=DESIGN_EMBEDDING_VARIABLE in variables)
    assert found == f"vector({OTHER_MODEL_DIMENSION})", (
        f"with a {OTHER_MODEL_DIMENSION}-dimension model the server left memory_units.embedding a {found}")
    if DESIGN_EMBEDDING_VARIABLE in variables:
        claim.holds(f"with a {OTHER_MODEL_DIMENSION}-dimension model the server made memory_units.embedding a {found}")
    else:
        claim.partial(f"with a {OTHER_MODEL_DIMENSION}-dimension model the server made memory_units.embedding a "
                      f"{found}, but {DESIGN_EMBEDDING_VARIABLE} is not one of its variables (the model is chosen per "
                      f"provider: {', '.join(sorted(variables)[:3])}, …); OpenAI's 1536 is not run offline")


def _hindsight_variables() -> set[str]:
    """The HINDSIGHT_API_* variable names the installed server's configuration reads (its ``ENV_*`` names),
    asked of the interpreter that runs Hindsight."""
    probe = subprocess.run([hm.hindsight_python(), "-c", "import hindsight_api.config as c; "
                            "print('\\n'.join(v for k, v in vars(c).items() if k.startswith('ENV_')))"],
                           capture_output=True, text=True, timeout=120, check=False)
    assert probe.returncode == 0, f"hindsight_api.config did not import: {probe.stderr[-500:]}"
    return {line for line in probe.stdout.splitlines() if line.startswith(hm.ENV_PREFIX)}


@pytest.mark.usefixtures("hindsight_installed")
@pytest.mark.claim("S2-retrieval-algorithms")
def test_the_named_retrieval_modules_exist(claim: ClaimRecorder) -> None:
    """design §2-2 "그래프 검색 알고리즘": the four modules it names, in the installed Hindsight."""
    present = [m for m in DESIGN_RETRIEVAL_MODULES if importlib.util.find_spec(f"{SEARCH_PACKAGE}.{m}") is not None]
    absent = [m for m in DESIGN_RETRIEVAL_MODULES if m not in present]
    claim.figures(documented_modules=len(DESIGN_RETRIEVAL_MODULES), present_modules=len(present))
    if absent:
        claim.partial(f"of the {len(DESIGN_RETRIEVAL_MODULES)} modules the design names, {SEARCH_PACKAGE} has "
                      f"{', '.join(present) or 'none'} and not {', '.join(absent)}; the decay and boost "
                      f"parameters are not checked")
    else:
        claim.partial(f"all {len(present)} modules the design names exist; the decay and boost parameters are not "
                      f"checked")
