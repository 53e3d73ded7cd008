"""What the repositories accept, checked in Python before any SQL is sent.

The design documents the allowed values of several ``VARCHAR`` columns only in comments
(section 4); the database enforces none of them. Here they become sets the repositories check.
Length limits are read from the models' column types, so a limit is written down once (in
``models.py``) and can never drift from the DDL.

The checks are plain comparisons rather than a validation framework: the batched writers run
them once per row and must stay close to the speed of a raw ``COPY``.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar

import orjson
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase

from jedisos_db.runtime.errors import InvalidInputError

SEVERITIES: Final = ("debug", "info", "warning", "error", "critical")
CHANNELS: Final = ("web", "telegram", "discord", "slack", "cli")
NOTIFICATION_CHANNELS: Final = (*CHANNELS, "email")
"""Keys of ``user_preferences.notification_channels``: the chat channels, and email."""
AUDIT_RESULTS: Final = ("success", "denied", "error")
COST_STATUSES: Final = ("success", "error", "timeout")
COST_SOURCES: Final = ("agent", "hindsight", "forge")
TOOL_SOURCES: Final = ("manual", "forge", "marketplace")
TOOL_TIERS: Final = (1, 2)
MCP_STATUSES: Final = ("stopped", "starting", "running", "error")
ACTION_TYPES: Final = ("chat", "tool", "workflow")
SCHEDULE_RESULTS: Final = ("success", "error")
PACKAGE_TYPES: Final = ("skill", "mcp_server", "prompt", "workflow", "identity", "bundle")

INT4_MAX: Final = 2**31 - 1
MAX_JSON_BYTES: Final = 64 * 1024
"""Largest JSONB document a repository writes (a policy, far below PostgreSQL's 255 MB): audit
details, payloads and registry caches are metadata, and an unbounded blob here is a bug upstream."""


E = TypeVar("E")


def coerce(cls: type[E], item: E | Mapping[str, Any], index: int | None = None) -> E:
    """``item`` as a ``cls`` event: instances pass through, mappings are validated by the
    constructor, and every error names the field (and ``index``, the row of a batch)."""
    if isinstance(item, cls):
        return item
    if not isinstance(item, Mapping):
        raise InvalidInputError("event", f"must be a {cls.__name__} or a mapping, got {type(item).__name__}",
                                index=index)
    try:
        return cls(**item)
    except InvalidInputError as exc:
        raise exc.at(index) if index is not None else exc from None
    except TypeError as exc:  # unknown or missing keyword
        raise InvalidInputError("event", str(exc), index=index) from None


def varchar_limit(model: type[DeclarativeBase], column: str) -> int:
    """The ``VARCHAR(n)`` limit of ``model.column``, as the model (and so the migration) declares it."""
    col_type = model.__table__.c[column].type
    if not isinstance(col_type, String) or col_type.length is None:
        raise InvalidInputError(f"{model.__name__}.{column}", "is not a VARCHAR(n) column")
    return int(col_type.length)


def timestamp(name: str, value: Any) -> dt.datetime | None:
    """A timezone-aware datetime (a naive one would be read in the server's TimeZone, silently) that
    exists in UTC (``datetime.min`` at +14:00 is in year 0, which Python cannot represent)."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        raise InvalidInputError(name, f"must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(name, "must be timezone-aware (e.g. datetime.now(UTC))")
    if not _in_utc_range(value):
        raise InvalidInputError(name, f"{value.isoformat()} is outside years 1-9999 in UTC")
    return value


def _in_utc_range(value: dt.datetime) -> bool:
    # Only the first and last year can leave the range by their offset; the others skip the conversion.
    if dt.MINYEAR < value.year < dt.MAXYEAR:
        return True
    try:
        value.astimezone(dt.UTC)
    except OverflowError:
        return False
    return True


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def text(field: str, value: Any, limit: int | None, *, required: bool = False) -> str | None:
    """A string of at most ``limit`` characters; ``None`` allowed unless ``required``."""
    if value is None:
        if required:
            raise InvalidInputError(field, "is required")
        return None
    if type(value) is not str:
        raise InvalidInputError(field, f"must be a string, got {type(value).__name__}")
    if required and not value:
        raise InvalidInputError(field, "must not be empty")
    if limit is not None and len(value) > limit:
        raise InvalidInputError(field, f"is {len(value)} characters; the column is VARCHAR({limit})")
    if "\x00" in value:
        raise InvalidInputError(field, "contains a NUL character, which PostgreSQL text cannot store")
    if not value.isascii():  # O(1) in CPython; only non-ASCII text can hold a lone surrogate
        utf8(field, value)
    return value


def utf8(field: str, value: str) -> str:
    """``value`` when it encodes as UTF-8: a lone surrogate (``"\ud800"``, e.g. from a bad JSON
    decode) cannot be sent to PostgreSQL."""
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise InvalidInputError(field, f"contains a lone surrogate ({value[exc.start]!r} at {exc.start}), "
                                       "which is not valid UTF-8") from None
    return value


def choice(field: str, value: Any, allowed: Sequence[Any], *, required: bool = False) -> Any:
    """One of ``allowed`` (the documented values); ``None`` allowed unless ``required``."""
    if value is None and not required:
        return None
    if value not in allowed or type(value) is bool:
        raise InvalidInputError(field, f"must be one of {', '.join(map(str, allowed))}; got {_show(value)}")
    return value


def integer(field: str, value: Any, *, low: int = 0, high: int = INT4_MAX, required: bool = True) -> int | None:
    """An ``int`` (not ``bool``) in ``[low, high]``."""
    if value is None:
        if required:
            raise InvalidInputError(field, "is required")
        return None
    if type(value) is not int:
        raise InvalidInputError(field, f"must be an integer, got {type(value).__name__}")
    if value < low:
        raise InvalidInputError(field, f"must be >= {low}; got {value}")
    if value > high:
        raise InvalidInputError(field, f"must be <= {high}; got {value}")
    return value


def decimal(field: str, value: Any, *, precision: int, scale: int, low: Decimal | None = Decimal(0),
            required: bool = True) -> Decimal | None:
    """A ``DECIMAL(precision, scale)`` value, rounded to ``scale`` places, ``>= low``.

    Floats are accepted (LiteLLM reports costs as floats) and converted through ``str`` so
    0.1 stays 0.1.
    """
    if value is None:
        if required:
            raise InvalidInputError(field, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise InvalidInputError(field, f"must be a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(field, f"must be finite; got {value}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise InvalidInputError(field, f"is not a number: {_show(value)}") from None
    if not number.is_finite():
        raise InvalidInputError(field, f"must be finite; got {number}")
    if low is not None and number < low:
        raise InvalidInputError(field, f"must be >= {low}; got {number}")
    # Checked before rounding too: quantize() of a huge value (1e30) exceeds the decimal context's precision.
    too_big = Decimal(10) ** (precision - scale)
    if abs(number) >= too_big + 1:
        raise InvalidInputError(field, f"{number} does not fit DECIMAL({precision},{scale}) (max {too_big})")
    quantized = number.quantize(Decimal(1).scaleb(-scale))
    if abs(quantized) >= too_big:
        raise InvalidInputError(
            field, f"{number} does not fit DECIMAL({precision},{scale}) (max {10 ** (precision - scale)})"
        )
    return quantized


def flag(field: str, value: Any) -> bool:
    if type(value) is not bool:
        raise InvalidInputError(field, f"must be true or false, got {type(value).__name__}")
    return value


def json_document(field: str, value: Any, *, kind: type[dict[Any, Any]] | type[list[Any]] | None = None,
                  max_bytes: int = MAX_JSON_BYTES, required: bool = False) -> str | None:
    """The JSON text of ``value`` (checked serialisable, of ``kind``, at most ``max_bytes``)."""
    if value is None:
        if required:
            raise InvalidInputError(field, "is required")
        return None
    if kind is not None and not isinstance(value, kind):
        raise InvalidInputError(field, f"must be a JSON {'object' if kind is dict else 'array'}, "
                                       f"got {type(value).__name__}")
    if not value:
        return "{}" if isinstance(value, dict) else "[]" if isinstance(value, list) else _encode(field, value)
    encoded = _encode(field, value)
    if "\\u0000" in encoded:
        raise InvalidInputError(field, "contains \\u0000, which jsonb cannot store")
    # A code point is at most 4 UTF-8 bytes: only encode when the short cut cannot decide.
    size = len(encoded) if len(encoded) * 4 <= max_bytes else len(encoded.encode())
    if size > max_bytes:
        raise InvalidInputError(field, f"is {size} bytes of JSON; the limit is {max_bytes}")
    return encoded


def _encode(field: str, value: Any) -> str:
    # orjson is ~8x faster than the stdlib encoder, which is what lets a batch of audit events
    # stay near raw COPY speed. Where the two disagree the stdlib decides: orjson writes NaN and
    # Infinity as null (so any null is re-checked) and refuses integers beyond 64 bits (which
    # jsonb stores fine). orjson also writes UUIDs as strings, which the stdlib refuses.
    try:
        encoded = orjson.dumps(value, option=_ORJSON_OPTIONS)
        if b"null" not in encoded:
            return encoded.decode()
    except TypeError:
        pass
    try:
        document = _JSON.encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(field, f"is not JSON-serialisable ({exc})") from None
    # orjson refuses lone surrogates (so valid UTF-8 never gets here); the stdlib writes them through.
    return document if document.isascii() else utf8(field, document)


_ORJSON_OPTIONS: Final = (orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
                          | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS)


# One encoder, built once (json.dumps with options builds a new one per call: measurable per row).
# allow_nan=False: NaN and Infinity are not JSON and jsonb rejects them.
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


@functools.lru_cache(maxsize=4096)
def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    # Audit batches repeat a handful of client addresses; parsing each once keeps record_many cheap.
    return ipaddress.ip_address(value)


def string_list(field: str, value: Any, *, item_limit: int = 255) -> list[str]:
    """A JSON array of short strings (tool names, tags, scopes)."""
    if not isinstance(value, list | tuple):
        raise InvalidInputError(field, f"must be a list of strings, got {type(value).__name__}")
    for i, item in enumerate(value):
        text(f"{field}[{i}]", item, item_limit, required=True)
    json_document(field, list(value))
    return list(value)


def ip_address(field: str, value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A host address for an ``INET`` column."""
    if value is None or type(value) is ipaddress.IPv4Address:
        return value
    if type(value) is ipaddress.IPv6Address and value.scope_id is None:
        return value  # an address object is valid as it is, unless it carries a zone (checked below)
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        value = str(value)  # a subclass, or an IPv6 address with a zone: one check below
    if type(value) is not str:
        raise InvalidInputError(field, f"must be an IP address string, got {type(value).__name__}")
    try:
        address = _parse_ip(value)
    except ValueError:
        raise InvalidInputError(field, f"is not an IPv4 or IPv6 address: {_show(value)}") from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise InvalidInputError(field, f"{value!r} has a zone (%{address.scope_id}), which INET cannot store; "
                                       "drop it or keep it in a text field")
    return address


def uuid_value(field: str, value: Any, *, required: bool = False) -> uuid.UUID | None:
    """A UUID, or its text form."""
    if value is None:
        if required:
            raise InvalidInputError(field, "is required")
        return None
    if isinstance(value, uuid.UUID):
        return value
    if type(value) is str:
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InvalidInputError(field, f"must be a UUID; got {_show(value)}")


def known_fields(field: str, changes: Mapping[str, Any], allowed: Sequence[str]) -> None:
    """Reject keyword updates of columns a method does not let callers change."""
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise InvalidInputError(field, f"cannot change {', '.join(unknown)}; allowed: {', '.join(allowed)}")


# --- column-wise checks for batches ------------------------------------------------------------
# A batch of plain dicts is checked one column at a time with built-ins (set, max, map), which
# costs a fraction of building and checking one object per row. These only answer "all fine?":
# on any doubt the caller re-checks row by row, which raises the precise error with its index.

_NONE = type(None)


def column_text(values: list[Any], limit: int | None, *, required: bool = False) -> bool:
    present = values if required else [x for x in values if x is not None]
    if {type(x) for x in present} - {str}:
        return False
    if not present:
        return True
    if required and min(map(len, present)) == 0:
        return False
    if limit is not None and max(map(len, present)) > limit:
        return False
    joined = "".join(present)
    return "\x00" not in joined and (joined.isascii() or _encodes(joined))


def _encodes(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def column_timestamps(values: list[Any]) -> bool:
    """Every value None or an aware datetime that exists in UTC (what :func:`timestamp` accepts)."""
    return column_types(values, {dt.datetime, _NONE}) and all(
        t is None or (t.utcoffset() is not None and _in_utc_range(t)) for t in values)


def column_choice(values: list[Any], allowed: Sequence[Any], *, required: bool = False) -> bool:
    if {type(x) for x in values} & {bool}:
        return False
    try:
        found = set(values)
    except TypeError:  # an unhashable value is certainly not one of the allowed ones
        return False
    if not required:
        found.discard(None)
    return found <= set(allowed)


def column_integer(values: list[Any], *, low: int = 0, high: int = INT4_MAX, required: bool = True) -> bool:
    present = values if required else [x for x in values if x is not None]
    if {type(x) for x in present} - {int}:
        return False
    return not present or (min(present) >= low and max(present) <= high)


def column_types(values: list[Any], types: set[type]) -> bool:
    return not ({type(x) for x in values} - types)
