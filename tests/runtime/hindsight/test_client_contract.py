"""Every HindsightClient method against the recorded OpenAPI contract of the real server (design §2-3).

The contract is ``fixtures/hindsight/openapi-<version>.json``, recorded from the installed
``hindsight-api-slim`` by ``scripts/record_hindsight_contract.py``. For each method: the route and
verb exist; the body it sends validates against the request schema and uses no key the schema
lacks; the query parameters exist; every field it reads exists in the response schema (and is
guaranteed there when the client needs it); and it parses the contract's own response example.
When Hindsight renames or moves any of that, one of these fails.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import respx
from pydantic import BaseModel

from jedisos_db.harness.hindsight import contract
from jedisos_db.runtime.hindsight import client as hc

from . import contract_helpers as ch

BASE = "http://hindsight.test"
BANK = hc.bank_id_for("u-42")
DOCUMENT = contract.load(ch.recorded_contract_path())


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    template: str
    call: Callable[[hc.HindsightClient], Awaitable[Any]]
    reads: type[BaseModel]
    """The model the client parses the 200 answer into: the fields it reads."""
    one_page: bool = False
    """Serve the example as the only page (its ``total`` says 150, the iterator would keep asking)."""


async def _collect(iterator: Any) -> list[Any]:
    return [item async for item in iterator]


CASES = [
    Case("create_or_update_bank", "PUT", "/v1/default/banks/{bank_id}",
         lambda c: c.create_or_update_bank(BANK, name="Ada", mission="remember what Ada says", background="test"),
         hc.Bank),
    Case("retain", "POST", "/v1/default/banks/{bank_id}/memories",
         lambda c: c.retain(BANK, ["Ada lives in Seoul", "Ada likes tea"], context="chat", tags=["user:u-42"],
                            metadata={"source": "test"}, document_id="doc-1"),
         hc.RetainResult),
    Case("recall", "POST", "/v1/default/banks/{bank_id}/memories/recall",
         lambda c: c.recall(BANK, "Where does Ada live?", max_tokens=512, budget="low", types=["world"],
                            tags=["user:u-42"]),
         hc.RecallResult),
    Case("reflect", "POST", "/v1/default/banks/{bank_id}/reflect",
         lambda c: c.reflect(BANK, "What does Ada like?", context="planning", max_tokens=256, budget="mid"),
         hc.Reflection),
    Case("list_entities", "GET", "/v1/default/banks/{bank_id}/entities",
         lambda c: c.list_entities(BANK, limit=10, offset=0), hc.Page[hc.Entity]),
    Case("iter_entities", "GET", "/v1/default/banks/{bank_id}/entities",
         lambda c: _collect(c.iter_entities(BANK, page_size=500)), hc.Page[hc.Entity], one_page=True),
    Case("list_memories", "GET", "/v1/default/banks/{bank_id}/memories/list",
         lambda c: c.list_memories(BANK, limit=10, offset=0, fact_type="world", q="Ada"), hc.Page[hc.MemoryUnit]),
    Case("iter_memories", "GET", "/v1/default/banks/{bank_id}/memories/list",
         lambda c: _collect(c.iter_memories(BANK, page_size=500)), hc.Page[hc.MemoryUnit], one_page=True),
    Case("delete_bank", "DELETE", "/v1/default/banks/{bank_id}", lambda c: c.delete_bank(BANK), hc.DeleteResult),
]
IDS = [case.name for case in CASES]


def _example(case: Case) -> Any:
    op = ch.operation(DOCUMENT, case.method, case.template)
    schema = ch.resolve(DOCUMENT, ch.response_schema(DOCUMENT, op))
    assert "example" in schema, f"{schema.get('title')} has no example in the contract"
    example = schema["example"]
    return {**example, "total": len(example["items"])} if case.one_page else example


async def _run(case: Case) -> tuple[httpx.Request, Any]:
    """Call the client against a mock answering the contract's own example; return what was sent and got."""
    url = BASE + case.template.replace("{bank_id}", BANK)
    with respx.mock(assert_all_called=True) as mock:
        route = mock.route(method=case.method, url__regex=rf"^{url}(\?.*)?$").respond(200, json=_example(case))
        async with hc.HindsightClient(BASE, max_retries=0) as client:
            result = await case.call(client)
    return route.calls.last.request, result


def test_the_recorded_contract_is_the_servers_own() -> None:
    assert DOCUMENT["info"]["title"] == "Hindsight HTTP API"
    assert ch.recorded_contract_path().name == f"openapi-{DOCUMENT['info']['version']}.json"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_route_and_verb_exist(case: Case) -> None:
    op = ch.operation(DOCUMENT, case.method, case.template)
    assert "200" in op["responses"], f"{case.method} {case.template} has no 200 response: {sorted(op['responses'])}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_request_matches_the_contract(case: Case) -> None:
    request, _ = await _run(case)
    op = ch.operation(DOCUMENT, case.method, case.template)
    assert request.method == case.method
    schema = ch.request_schema(DOCUMENT, op)
    if schema is None:
        assert request.content == b"", f"{case.name} sends a body the route does not take"
    else:
        body = json.loads(request.content)
        ch.validate(DOCUMENT, schema, body)
        assert ch.unknown_keys(DOCUMENT, schema, body) == []
    query = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
    sent = set(request.url.params.keys())
    assert sent <= query, f"{case.name} sends query parameters {sorted(sent - query)} the route does not define"
    required_query = {p["name"] for p in op.get("parameters", []) if p["in"] == "query" and p.get("required")}
    assert required_query <= sent


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fields_the_client_reads_exist_in_the_response(case: Case) -> None:
    op = ch.operation(DOCUMENT, case.method, case.template)
    assert ch.fields_missing_from_schema(DOCUMENT, case.reads, ch.response_schema(DOCUMENT, op)) == []


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_client_parses_the_contracts_example(case: Case) -> None:
    example = _example(case)
    op = ch.operation(DOCUMENT, case.method, case.template)
    ch.validate(DOCUMENT, ch.response_schema(DOCUMENT, op), example)  # the example itself is valid
    _, result = await _run(case)
    parsed = case.reads.model_validate(example)
    if case.name == "recall":
        assert result == parsed.results  # type: ignore[attr-defined]
        assert [m.text for m in result] == [r["text"] for r in example["results"]]
    elif case.name.startswith("iter_"):
        assert result == parsed.items  # type: ignore[attr-defined]
    else:
        assert result == parsed


def test_bank_routes_answer_404_for_an_unknown_bank() -> None:
    """Entities and memories/list document 404: the client maps it to BankNotFoundError."""
    for template in ("/v1/default/banks/{bank_id}/entities", "/v1/default/banks/{bank_id}/memories/list"):
        assert "404" in ch.operation(DOCUMENT, "GET", template)["responses"], template


def test_the_client_sends_auth_where_the_contract_reads_it() -> None:
    """Hindsight reads the API key from the ``authorization`` header on every route the client uses."""
    for case in CASES:
        op = ch.operation(DOCUMENT, case.method, case.template)
        headers = {p["name"].lower() for p in op.get("parameters", []) if p["in"] == "header"}
        assert "authorization" in headers, f"{case.method} {case.template} takes headers {sorted(headers)}"


class TestDesignRecallSnippet:
    """Design §2-3 documents ``recall()`` as ``POST /v1/default/banks/{bank_id}/reflect`` -> ``list[dict]``."""

    async def test_design_recall_via_reflect_is_false(self) -> None:
        """Run the design's recall the way it is written: the contract's /reflect answer is not memories."""
        reflect = ch.operation(DOCUMENT, "POST", "/v1/default/banks/{bank_id}/reflect")
        answer_schema = ch.resolve(DOCUMENT, ch.response_schema(DOCUMENT, reflect))
        example = answer_schema["example"]
        url = f"{BASE}/v1/default/banks/{BANK}/reflect"
        with respx.mock:
            respx.post(url).respond(200, json=example)
            async with httpx.AsyncClient() as http:
                # The design's body would be a recall query; /reflect answers with prose, not a list.
                answer = (await http.post(url, json={"query": "Where does Ada live?"})).json()
        assert not isinstance(answer, list), "design §2-3 expects list[dict] from /reflect"
        assert "results" not in answer_schema["properties"]
        assert set(answer_schema["required"]) == {"text"}, answer_schema["required"]
        assert reflect["operationId"] == "reflect"

    def test_recall_is_memories_recall(self) -> None:
        recall = ch.operation(DOCUMENT, "POST", "/v1/default/banks/{bank_id}/memories/recall")
        schema = ch.resolve(DOCUMENT, ch.response_schema(DOCUMENT, recall))
        assert recall["operationId"] == "recall_memories"
        assert "results" in schema["required"]
        assert ch.resolve(DOCUMENT, schema["properties"]["results"]["items"])["title"] == "RecallResult"


class TestDriftIsCaught:
    """The checks above fail when Hindsight changes what the client relies on (a copy of the contract, edited)."""

    def _drifted(self) -> ch.Document:
        return json.loads(json.dumps(DOCUMENT))

    def test_a_renamed_response_field_is_reported(self) -> None:
        document = self._drifted()
        recall = document["components"]["schemas"]["RecallResponse"]
        recall["properties"]["memories"] = recall["properties"].pop("results")
        recall["required"] = ["memories"]
        op = ch.operation(document, "POST", "/v1/default/banks/{bank_id}/memories/recall")
        problems = ch.fields_missing_from_schema(document, hc.RecallResult, ch.response_schema(document, op))
        assert any("RecallResult.results" in p for p in problems), problems

    def test_a_nested_field_made_optional_is_reported(self) -> None:
        document = self._drifted()
        document["components"]["schemas"]["RecallResult"]["required"] = ["id"]
        op = ch.operation(document, "POST", "/v1/default/banks/{bank_id}/memories/recall")
        problems = ch.fields_missing_from_schema(document, hc.RecallResult, ch.response_schema(document, op))
        assert any("Memory.text" in p and "omit" in p for p in problems), problems

    async def test_a_renamed_request_field_is_reported(self) -> None:
        document = self._drifted()
        item = document["components"]["schemas"]["MemoryItem"]
        item["properties"]["text"] = item["properties"].pop("content")
        item["required"] = ["text"]
        case = next(c for c in CASES if c.name == "retain")
        request, _ = await _run(case)
        body = json.loads(request.content)
        schema = ch.request_schema(document, ch.operation(document, "POST", case.template))
        assert schema is not None
        with pytest.raises(ch.jsonschema.ValidationError, match="'text' is a required property"):
            ch.validate(document, schema, body)
        assert "$.items[0].content: not in schema MemoryItem" in ch.unknown_keys(document, schema, body)

    def test_a_moved_route_is_reported(self) -> None:
        document = self._drifted()
        document["paths"]["/v1/default/banks/{bank_id}/recall"] = document["paths"].pop(
            "/v1/default/banks/{bank_id}/memories/recall")
        with pytest.raises(AssertionError, match="not in the recorded contract"):
            ch.operation(document, "POST", "/v1/default/banks/{bank_id}/memories/recall")
