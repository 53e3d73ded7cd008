"""What JediSOS sends to Hindsight and what it reads back, typed.

The read models name exactly the fields the client reads; ``tests/runtime/hindsight/
test_client_contract.py`` checks each against the recorded OpenAPI contract
(``fixtures/hindsight/openapi-<version>.json``), so a renamed field fails there first. The
enumerations (``TagsMatch``, ``UpdateMode`` ...) are written here once and checked against the
contract's enums by the same test.

Bad arguments raise :class:`~jedisos_db.runtime.errors.InvalidInputError` naming the field and the
rule, before any request is sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypedDict, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field

from jedisos_db.runtime.errors import InvalidInputError

# --- enumerations of the contract ---------------------------------------------------------------

Budget = Literal["low", "mid", "high"]
TagsMatch = Literal["any", "all", "any_strict", "all_strict", "exact"]
"""``any``/``all`` also match untagged memories; ``any_strict``/``all_strict``/``exact`` do not."""
UpdateMode = Literal["replace", "append"]
FactType = Literal["world", "experience", "observation"]
MemoryTimeField = Literal["created_at", "updated_at", "mentioned_at", "occurred_start", "occurred_end"]
DocumentTimeField = Literal["created_at", "updated_at"]
# The contract types these two as free strings; the values are those its descriptions and the official
# client name; the contract test cannot check them as it checks the others.
MemoryState = Literal["valid", "invalidated"]
ConsolidationState = Literal["failed", "pending", "done"]
OperationState = Literal["pending", "processing", "completed", "failed", "cancelled", "not_found"]
FINISHED: frozenset[OperationState] = frozenset({"completed", "failed", "cancelled", "not_found"})
"""States an async operation never leaves."""
UNSET = "unset"
"""The retain ``timestamp`` that stores a memory with no time at all (timeless content)."""


# --- argument checks: each names the field and the rule ------------------------------------------


def text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(name, f"must be a non-empty string; got {value!r}")
    return value


def strings(value: object, name: str) -> list[str]:
    # A lone string is a Sequence[str] too: "work" would become ["w", "o", "r", "k"].
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidInputError(name, f"must be a list of strings, not {type(value).__name__}")
    return [text(item, f"{name}[{i}]") for i, item in enumerate(value)]


def choice(value: object, name: str, allowed: Any) -> str:
    """``value`` if it is one of the ``Literal`` type ``allowed``'s values."""
    options = get_args(allowed)
    if value not in options:
        raise InvalidInputError(name, f"must be one of {', '.join(options)}; got {value!r}")
    return str(value)


def positive(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(name, f"must be an integer >= 1; got {value!r}")
    return value


def moment(value: object, name: str) -> str:
    """An ISO 8601 date-time with a UTC offset. A naive time is refused: Hindsight reads it as UTC, so
    a local time without its offset (a user's KST evening) would land hours off, silently."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInputError(name, f"must be an ISO 8601 date-time; got {value!r}") from None
    if not isinstance(value, datetime):
        raise InvalidInputError(name, f"must be a datetime or an ISO 8601 string, not {type(value).__name__}")
    if value.utcoffset() is None:
        raise InvalidInputError(name, f"needs a UTC offset (e.g. 2024-01-15T10:30:00+00:00); "
                                      f"{value.isoformat()} is naive")
    return value.isoformat()


def operation_uuid(value: object, name: str = "operation_id") -> str:
    """Hindsight keys async operations by UUID (a non-UUID id is a 400/422 from the server)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidInputError(name, f"must be a UUID (e.g. str(uuid.uuid4())); got {value!r}") from None


# --- what the client sends ----------------------------------------------------------------------


@dataclass(frozen=True)
class EntityRef:
    """An entity to link a memory to, on top of those Hindsight extracts (``EntityInput``)."""

    text: str
    type: str | None = None
    """E.g. ``PERSON``, ``ORG``, ``CONCEPT`` (Hindsight's default when none is given)."""

    def __post_init__(self) -> None:
        text(self.text, "entities.text")
        if self.type is not None:
            text(self.type, "entities.type")

    def body(self) -> dict[str, str]:
        return {"text": self.text} if self.type is None else {"text": self.text, "type": self.type}


@dataclass(frozen=True)
class RetainItem:
    """One memory to retain with its own context, tags, metadata and time (``MemoryItem``).

    ``timestamp`` is when the content happened (a timezone-aware datetime or ISO string;
    :data:`UNSET` for timeless content; None means now). ``update_mode`` says what a retain into
    an existing ``document_id`` does: ``replace`` (Hindsight's default) re-extracts the document
    from this content alone, ``append`` adds this content to the stored text first.
    """

    content: str
    context: str | None = None
    tags: Sequence[str] | None = None
    metadata: Mapping[str, str] | None = None
    timestamp: datetime | str | None = None
    document_id: str | None = None
    entities: Sequence[EntityRef | str] | None = None
    update_mode: UpdateMode | None = None
    _body: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        body: dict[str, Any] = {"content": text(self.content, "content")}
        if self.context is not None:
            body["context"] = text(self.context, "context")
        if self.tags is not None:
            body["tags"] = strings(self.tags, "tags")
        if self.metadata is not None:
            body["metadata"] = _metadata(self.metadata)
        if self.timestamp is not None:
            body["timestamp"] = UNSET if self.timestamp == UNSET else moment(self.timestamp, "timestamp")
        if self.document_id is not None:
            body["document_id"] = text(self.document_id, "document_id")
        if self.entities is not None:
            if isinstance(self.entities, str) or not isinstance(self.entities, Sequence):
                raise InvalidInputError("entities", "must be a list of EntityRef or names")
            body["entities"] = [(e if isinstance(e, EntityRef) else EntityRef(e)).body() for e in self.entities]
        if self.update_mode is not None:
            body["update_mode"] = choice(self.update_mode, "update_mode", UpdateMode)
            if self.update_mode == "append" and self.document_id is None:
                # Hindsight refuses it too (400), but only after the request; say it before.
                raise InvalidInputError("update_mode", "'append' adds to an existing document: give its document_id")
        object.__setattr__(self, "_body", body)

    def body(self) -> dict[str, Any]:
        """The ``MemoryItem`` JSON object (only the fields given)."""
        return dict(self._body)


def _metadata(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidInputError("metadata", f"must be a mapping of strings to strings, not {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            # The contract types metadata as {str: str}; a number would be a 422 after the request.
            raise InvalidInputError("metadata", f"keys and values must be strings; got {key!r}: {type(item).__name__}")
    return dict(value)


class RecallOptions(TypedDict, total=False):
    """Options of ``recall`` and ``recall_full`` (``RecallRequest``)."""

    max_tokens: int
    budget: Budget
    types: Sequence[FactType]
    tags: Sequence[str]
    tags_match: TagsMatch
    """Without it Hindsight uses ``any``, which also returns untagged memories."""
    query_timestamp: datetime | str
    """The "now" of relative expressions ("last week") and of recency scoring."""


class MemoryFilters(TypedDict, total=False):
    """Query parameters of ``GET …/memories/list`` (every one optional)."""

    fact_type: FactType
    q: str
    document_id: str
    entity_id: str
    tags: Sequence[str]
    tags_match: TagsMatch
    state: MemoryState
    consolidation_state: ConsolidationState
    time_field: MemoryTimeField
    start_date: datetime | str
    end_date: datetime | str


class DocumentFilters(TypedDict, total=False):
    """Query parameters of ``GET …/documents`` (every one optional)."""

    q: str
    tags: Sequence[str]
    tags_match: TagsMatch
    time_field: DocumentTimeField
    start_date: datetime | str
    end_date: datetime | str


_RENAMED = {"fact_type": "type"}
"""Our argument names that differ from Hindsight's (``type`` shadows a builtin)."""

_CHECKS: dict[str, Any] = {
    "max_tokens": positive,
    "budget": lambda v, n: choice(v, n, Budget),
    "types": lambda v, n: [choice(t, f"{n}[{i}]", FactType) for i, t in enumerate(strings(v, n))],
    "fact_type": lambda v, n: choice(v, n, FactType),
    "tags": strings,
    "tags_match": lambda v, n: choice(v, n, TagsMatch),
    "state": lambda v, n: choice(v, n, MemoryState),
    "consolidation_state": lambda v, n: choice(v, n, ConsolidationState),
    "query_timestamp": moment,
    "start_date": moment,
    "end_date": moment,
    "q": text,
    "document_id": text,
    "entity_id": text,
}


def checked(options: Mapping[str, Any], *, time_fields: Any = MemoryTimeField) -> dict[str, Any]:
    """``options`` checked and normalised, under Hindsight's names; None values are left out."""
    out: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        if name == "time_field":
            out[name] = choice(value, name, time_fields)
        elif name in _CHECKS:
            out[_RENAMED.get(name, name)] = _CHECKS[name](value, name)
        else:
            raise InvalidInputError(name, "is not an option of this call")
    return out


# --- what the client reads ------------------------------------------------------------------------


class _Read(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Bank(_Read):
    """``BankProfileResponse`` of ``PUT /v1/default/banks/{bank_id}``."""

    bank_id: str
    name: str
    mission: str
    background: str | None = None
    disposition: dict[str, int] = Field(default_factory=dict)


class RetainResult(_Read):
    """``RetainResponse`` of ``POST …/memories``.

    ``operation_id`` is set for an async retain (the caller's own, when it gave one);
    ``operation_ids`` when Hindsight split the items into several strategy groups.
    """

    success: bool
    bank_id: str
    items_count: int
    is_async: bool = Field(alias="async")
    operation_id: str | None = None
    operation_ids: list[str] | None = None


class RecallScores(_Read):
    """``RecallScores``: how a recalled memory ranked; an arm that did not surface it scores None."""

    final: float
    semantic: float | None = None
    keyword: float | None = None
    reranker: float | None = None


class Memory(_Read):
    """One ``RecallResult`` of ``POST …/memories/recall``."""

    id: str
    text: str
    type: str | None = None
    context: str | None = None
    entities: list[str] | None = None
    document_id: str | None = None
    chunk_id: str | None = None
    mentioned_at: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    scores: RecallScores | None = None


class EntityObservation(_Read):
    """``EntityObservationResponse``: one thing Hindsight concluded about an entity."""

    text: str
    mentioned_at: str | None = None


class EntityState(_Read):
    """``EntityStateResponse``: an entity the recalled memories mention, with its observations."""

    entity_id: str
    canonical_name: str
    observations: list[EntityObservation]


class Chunk(_Read):
    """``ChunkData``: the raw text a recalled memory was extracted from."""

    id: str
    text: str
    chunk_index: int
    truncated: bool = False


class RecallResult(_Read):
    """``RecallResponse``: the memories found, best first; the entities and chunks when asked for."""

    results: list[Memory]
    entities: dict[str, EntityState] | None = None
    """By entity name; None unless ``include_entities``."""
    chunks: dict[str, Chunk] | None = None
    """By ``Memory.chunk_id``; None unless ``include_chunks``."""


class Reflection(_Read):
    """``ReflectResponse`` of ``POST …/reflect``: an answer written by Hindsight's LLM."""

    text: str
    based_on: dict[str, Any] | None = None


class Entity(_Read):
    """One ``EntityListItem`` of ``GET …/entities``."""

    id: str
    canonical_name: str
    mention_count: int
    first_seen: str | None = None
    last_seen: str | None = None


class MemoryUnit(_Read):
    """One ``MemoryUnitListItem`` of ``GET …/memories/list``."""

    id: str
    text: str | None = None
    fact_type: str | None = None
    context: str | None = None
    document_id: str | None = None
    entities: str | None = None  # Hindsight lists them as one comma-separated string here
    mentioned_at: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    state: str | None = None


class Document(_Read):
    """One ``DocumentListItem`` of ``GET …/documents``."""

    id: str
    created_at: str | None = None
    updated_at: str | None = None
    memory_unit_count: int | None = None
    text_length: int | None = None
    tags: list[str] | None = None


class DocumentDetail(_Read):
    """``DocumentResponse`` of ``GET …/documents/{document_id}``: the stored text and its counts."""

    id: str
    bank_id: str
    original_text: str | None
    memory_unit_count: int
    created_at: str
    updated_at: str
    tags: list[str] | None = None


class DocumentDeleteResult(_Read):
    """``DeleteDocumentResponse`` of ``DELETE …/documents/{document_id}``."""

    success: bool
    document_id: str
    memory_units_deleted: int
    message: str


class BankConfig(_Read):
    """``BankConfigResponse``: the bank's resolved settings and, separately, its own overrides."""

    bank_id: str
    config: dict[str, Any]
    overrides: dict[str, Any]


class Operation(_Read):
    """``OperationStatusResponse`` of ``GET …/operations/{operation_id}``: an async job's state."""

    operation_id: str
    status: OperationState
    operation_type: str | None = None
    created_at: str | None = None
    completed_at: str | None = None
    error_message: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class DeleteResult(_Read):
    """``DeleteResponse`` of ``DELETE /v1/default/banks/{bank_id}``."""

    success: bool
    message: str | None = None
    deleted_count: int | None = None


T = TypeVar("T", bound=BaseModel)


class Page(_Read, Generic[T]):
    """One page of a paginated list (``EntityListResponse``, ``ListMemoryUnitsResponse``, ``ListDocumentsResponse``)."""

    items: list[T]
    total: int
    limit: int
    offset: int
