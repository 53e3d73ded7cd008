"""End to end through the real Hindsight server, offline (design §2-3; DESIGN.md verified facts).

JediSOS reaches its memories only through HindsightClient: retain -> recall finds it -> reflect
answers -> entities and memories are listed -> the bank is deleted -> recall on it is 404.
The running server's own OpenAPI document must equal the recorded contract the respx tests use.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from jedisos_db.harness.hindsight import contract
from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.runtime.errors import BankNotFoundError, HindsightRequestError
from jedisos_db.runtime.hindsight.client import HindsightClient, bank_id_for
from tests.plugins.databases import DatabaseFactory
from tests.plugins.hindsight import HindsightFactory, HindsightHome, RunningHindsight

from . import contract_helpers as ch

pytestmark = pytest.mark.e2e

FACTS = ["Alice works at Acme Corp in Seoul and likes hiking on weekends.",
         "Bob is a pianist who lives in Busan."]


@pytest.mark.claim("S2-retain-route", "S2-entities-route", "S2-bank-per-user")
async def test_memory_lifecycle_through_the_api_only(hindsight_server: RunningHindsight, claim: ClaimRecorder) -> None:
    """Design §2-3 ([JS-B001]): retain, recall, reflect, entities — then the bank is gone and recall is 404."""
    bank = bank_id_for("e2e-lifecycle")
    async with HindsightClient(hindsight_server.base_url, timeout=120) as client:
        profile = await client.create_or_update_bank(bank, name="E2E user", mission="remember the user's facts")
        assert (profile.bank_id, profile.name) == (bank, "E2E user")
        updated = await client.create_or_update_bank(bank, mission="remember everything")
        assert updated.mission == "remember everything"

        retained = await client.retain(bank, FACTS, context="e2e")
        assert retained.success
        assert retained.items_count == len(FACTS)

        found = await client.recall(bank, "Where does Alice work?")
        assert found, "recall found nothing right after retain"
        assert any("Acme" in m.text for m in found), [m.text for m in found]

        answer = await client.reflect(bank, "Where does Alice work?")
        assert answer.text  # the mock LLM's prose: reflect is not recall (design §2-3 is wrong)

        names = {e.canonical_name async for e in client.iter_entities(bank, page_size=2)}
        assert {"Alice", "Bob"} <= names, names
        first_page = await client.list_entities(bank, limit=1)
        assert first_page.total == len(names)
        assert len(first_page.items) == 1
        claim.holds(f"POST …/banks/{bank}/memories retained {retained.items_count} items on the real server",
                    claim="S2-retain-route", retained_items=retained.items_count)
        claim.partial(f"GET …/banks/{bank}/entities answered a page of {len(first_page.items)} of {first_page.total} "
                      f"entities (items, total, limit, offset), not a list; walking the pages found {len(names)}",
                      claim="S2-entities-route", fix="fixed at head: HindsightClient.iter_entities walks every page",
                      entities_total=first_page.total)
        claim.holds(f"the real server keeps a bank {bank!r} (jedisos-{{user_id}}) for one user, created by retain",
                    claim="S2-bank-per-user")

        texts = [u.text async for u in client.iter_memories(bank, page_size=1)]
        assert any(t and "Acme" in t for t in texts), texts
        assert any(t and "Busan" in t for t in texts), texts

        deleted = await client.delete_bank(bank)
        assert deleted.success
        with pytest.raises(BankNotFoundError) as gone:
            await client.recall(bank, "Where does Alice work?")
        assert gone.value.bank_id == bank
        with pytest.raises(BankNotFoundError):
            await client.list_entities(bank)
    embeddings = hindsight_server.server.embeddings
    assert embeddings is not None
    assert embeddings.requests > 0, "Hindsight never called our TEI endpoint"


async def test_recall_on_an_unknown_bank_is_404_and_retain_creates_it(hindsight_server: RunningHindsight) -> None:
    """DESIGN.md: retain into an unknown bank creates it; recall on an unknown bank is 404."""
    bank = bank_id_for("e2e-fresh")
    async with HindsightClient(hindsight_server.base_url, timeout=120) as client:
        with pytest.raises(BankNotFoundError):
            await client.recall(bank, "anything")
        await client.retain(bank, "Carol collects vintage cameras.")
        found = await client.recall(bank, "What does Carol collect?")
        assert any("cameras" in m.text for m in found), [m.text for m in found]
        await client.delete_bank(bank)


async def test_semantic_retrieval_works_with_our_embeddings(hindsight_server: RunningHindsight) -> None:
    """Recall is not keyword search alone: our TEI vectors clear Hindsight's semantic threshold."""
    bank = bank_id_for("e2e-semantic")
    async with HindsightClient(hindsight_server.base_url, timeout=120) as client:
        await client.retain(bank, FACTS)
        async with httpx.AsyncClient(base_url=hindsight_server.base_url, timeout=120) as http:
            answer = await http.post(f"/v1/default/banks/{bank}/memories/recall",
                                     json={"query": "Where does Alice work?"})
        await client.delete_bank(bank)
    results = answer.json()["results"]
    assert results, answer.text
    best = results[0]
    assert "Acme" in best["text"]
    assert (best["scores"] or {}).get("semantic") is not None, best["scores"]
    assert all("Busan" not in r["text"] for r in results), [r["text"] for r in results]


@pytest.mark.claim("S2-recall-route", shows="fails")
async def test_design_recall_via_reflect_does_not_return_memories(hindsight_server: RunningHindsight,
                                                                  claim: ClaimRecorder) -> None:
    """Design §2-3: ``recall() -> list[dict]`` as ``POST …/reflect``. Run as written against the real
    server, it gets an LLM-written answer object, not the stored memories — the claim is false."""
    bank = bank_id_for("e2e-design-recall")
    async with HindsightClient(hindsight_server.base_url, timeout=120) as client:
        await client.retain(bank, FACTS)
        async with httpx.AsyncClient(base_url=hindsight_server.base_url, timeout=120) as http:
            design = await http.post(f"/v1/default/banks/{bank}/reflect", json={"query": "Where does Alice work?"})
        real = await client.recall(bank, "Where does Alice work?")
        await client.delete_bank(bank)
    assert design.status_code == 200, design.text
    answer = design.json()
    assert not isinstance(answer, list), answer
    assert "results" not in answer
    assert set(answer) >= {"text"}, sorted(answer)
    assert any("Acme" in m.text for m in real)  # the real recall route does return the memory
    claim.fails(f"the design's recall (POST …/reflect) got an answer object with keys {sorted(answer)}, no memories; "
                f"POST …/memories/recall returned {len(real)} memories for the same query",
                fix="fixed at head: HindsightClient.recall posts to …/memories/recall (runtime/hindsight/client.py)",
                memories_via_reflect=0, memories_via_recall=len(real))


def test_the_running_server_agrees_with_the_recorded_contract(hindsight_server: RunningHindsight) -> None:
    """The contract the respx tests check against is what this server really serves."""
    live = httpx.get(hindsight_server.base_url + "/openapi.json", timeout=30).json()
    recorded = contract.load(ch.recorded_contract_path())
    assert live["info"]["version"] == recorded["info"]["version"], (
        "the installed Hindsight differs from the recorded contract; run scripts/record_hindsight_contract.py"
    )
    assert sorted(live["paths"]) == sorted(recorded["paths"])
    different = [path for path in recorded["paths"] if live["paths"][path] != recorded["paths"][path]]
    assert different == []
    schemas = [n for n in recorded["components"]["schemas"]
               if live["components"]["schemas"].get(n) != recorded["components"]["schemas"][n]]
    assert schemas == []


async def test_api_key_is_accepted_and_a_wrong_one_refused(database_factory: DatabaseFactory,
                                                           hindsight_home: HindsightHome,
                                                           hindsight_server_factory: HindsightFactory) -> None:
    """The client's Authorization header against Hindsight's own ApiKeyTenantExtension (on the server the run
    places Hindsight on)."""
    secret = "e2e-key-5b1d"
    guarded = hindsight_server_factory(hindsight_home(database_factory("hindsight_auth")), env={
        "HINDSIGHT_API_TENANT_EXTENSION": "hindsight_api.extensions.builtin.tenant:ApiKeyTenantExtension",
        "HINDSIGHT_API_TENANT_API_KEY": secret,
    })
    bank = bank_id_for("e2e-auth")
    async with HindsightClient(guarded.base_url, api_key=secret, timeout=120) as client:
        assert (await client.retain(bank, "Dave drinks green tea.")).success
    for wrong in ("not-the-key", None):
        async with HindsightClient(guarded.base_url, api_key=wrong, max_retries=0) as client:
            with pytest.raises(HindsightRequestError) as refused:
                await client.recall(bank, "What does Dave drink?")
        assert refused.value.status == 401, refused.value
    assert secret not in guarded.server.log_tail(200)


@pytest.mark.usefixtures("hindsight_installed")
def test_recording_the_installed_server_reproduces_the_committed_contract(tmp_path: Path) -> None:
    """scripts/record_hindsight_contract.py is deterministic, and the committed file is the installed release's."""
    written = contract.record(tmp_path)
    committed = contract.contract_path(written.stem.removeprefix("openapi-"))
    assert committed.exists(), f"installed Hindsight {written.name} has no committed contract; record and commit it"
    assert written.read_bytes() == committed.read_bytes(), (
        f"{committed} differs from what the installed Hindsight serves; re-record it"
    )
