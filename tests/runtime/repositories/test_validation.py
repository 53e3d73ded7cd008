"""JSON documents: the fast encoder must not change what is accepted or how it reads back."""

from __future__ import annotations

import json
import math
import uuid

import pytest

from jedisos_db.runtime.errors import InvalidInputError
from jedisos_db.runtime.repositories import validation as v


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "nested": {"list": [1, 2.5, None, True]}, "text": "한국어 ✓"},
        {"big": 2**70},  # beyond 64 bits: jsonb stores it, orjson refuses, the stdlib writes it
        {1: "int key"},
        {"null": None},
        [],
    ],
)
def test_documents_round_trip_like_the_standard_library(value: object) -> None:
    encoded = v.json_document("details", value)
    assert encoded is not None
    assert json.loads(encoded) == json.loads(json.dumps(value))


@pytest.mark.parametrize("bad", [{"n": math.nan}, {"n": -math.inf}, {"s": {1, 2}}, {"b": b"x"}])
def test_documents_jsonb_cannot_hold_are_refused_naming_the_field(bad: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        v.json_document("details", bad)
    assert info.value.field == "details"
    assert "JSON" in info.value.rule


def test_uuids_are_written_as_strings() -> None:
    u = uuid.uuid4()
    assert json.loads(v.json_document("details", {"u": u}) or "") == {"u": str(u)}


def test_size_limit_counts_utf8_bytes() -> None:
    doc = {"k": "한" * 30}  # 90 bytes of UTF-8 in 30 characters
    assert v.json_document("details", doc, max_bytes=200) is not None
    with pytest.raises(InvalidInputError, match="bytes of JSON"):
        v.json_document("details", doc, max_bytes=60)
