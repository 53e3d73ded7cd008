"""Our TEI-compatible embedding endpoint: what Hindsight's ``tei`` provider needs, and recall-worthy vectors."""

from __future__ import annotations

import math

import httpx
import pytest

from jedisos_db.harness.hindsight.embeddings import DIMENSION, EmbeddingServer, embed


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_vectors_are_deterministic_unit_vectors_of_384_dims() -> None:
    first = embed("Alice works at Acme Corp in Seoul")
    assert len(first) == DIMENSION
    assert math.isclose(math.sqrt(sum(v * v for v in first)), 1.0, rel_tol=1e-9)
    assert embed("Alice works at Acme Corp in Seoul") == first


SEMANTIC_MIN_SIMILARITY = 0.3
"""Hindsight's default HINDSIGHT_API_SEMANTIC_MIN_SIMILARITY: below it semantic retrieval drops a memory."""


@pytest.mark.parametrize(("stored", "query"), [
    ("Alice works at Acme Corp in Seoul and likes hiking", "Where does Alice work?"),
    ("Carol collects vintage cameras.", "What does Carol collect?"),
])
def test_a_question_clears_hindsights_semantic_threshold_for_its_fact(stored: str, query: str) -> None:
    assert _cosine(embed(stored), embed(query)) >= SEMANTIC_MIN_SIMILARITY


def test_unrelated_texts_stay_far_apart() -> None:
    stored = embed("Alice works at Acme Corp in Seoul and likes hiking")
    for other in ("quarterly invoice totals for the printer toner budget", "Bob is a pianist who lives in Busan."):
        assert abs(_cosine(stored, embed(other))) < 0.1, other


def test_empty_text_still_gets_a_unit_vector() -> None:
    """pgvector's cosine distance of a zero vector is NaN, which would poison recall ordering."""
    vector = embed("")
    assert math.isclose(sum(v * v for v in vector), 1.0)


def test_serves_the_tei_protocol_hindsight_uses() -> None:
    """hindsight_api.engine.embeddings.RemoteTEIEmbeddings: GET /info, POST /embed {"inputs": [...]}."""
    with EmbeddingServer() as server, httpx.Client(base_url=server.url, timeout=5) as http:
        info = http.get("/info")
        assert info.status_code == 200
        assert info.json()["model_id"]
        vectors = http.post("/embed", json={"inputs": ["hello world", "test"]})
        assert vectors.status_code == 200
        body = vectors.json()
        assert [len(v) for v in body] == [DIMENSION, DIMENSION]
        assert body[0] == pytest.approx(embed("hello world"))
        assert server.requests == 1
        bad = http.post("/embed", json={"texts": ["wrong field"]})
        assert bad.status_code == 422
        assert "inputs" in bad.json()["error"]


def test_stopped_server_frees_its_port() -> None:
    server = EmbeddingServer()
    url = server.start()
    server.stop()
    with pytest.raises(httpx.ConnectError), httpx.Client(timeout=2) as http:
        http.get(url + "/info")


def test_a_hold_keeps_answers_back_until_released() -> None:
    """What the e2e tests use to keep one Hindsight request in flight: no clock, two conditions."""
    from concurrent.futures import ThreadPoolExecutor

    with EmbeddingServer() as server, ThreadPoolExecutor(1) as pool:
        with server.hold(timeout=30) as hold:
            pending = pool.submit(httpx.post, server.url + "/embed", json={"inputs": ["held text"]}, timeout=30)
            assert hold.wait_for(lambda texts: "held text" in texts)
            assert not pending.done()  # the answer is held back ...
            assert server.requests == 0
            hold.release()
            answer = pending.result(timeout=30)  # ... and comes once released
        assert answer.status_code == 200
        assert answer.json()[0] == pytest.approx(embed("held text"))
        with httpx.Client(base_url=server.url, timeout=5) as http:  # the hold ended with its block
            assert http.post("/embed", json={"inputs": ["free"]}).status_code == 200
