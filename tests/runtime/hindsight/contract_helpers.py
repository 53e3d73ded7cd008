"""Reading the recorded Hindsight contract: which file, schema lookups, and the model-vs-schema check."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import jsonschema
from pydantic import BaseModel

from jedisos_db.harness.hindsight import contract

Document = dict[str, Any]


def recorded_contract_path() -> Path:
    """The newest ``fixtures/hindsight/openapi-<version>.json`` (one per Hindsight release we support)."""

    def key(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.stem))

    files = sorted(contract.DEFAULT_DIR.glob("openapi-*.json"), key=key)
    assert files, f"no recorded contract in {contract.DEFAULT_DIR}; run scripts/record_hindsight_contract.py"
    return files[-1]


def resolve(document: Document, schema: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` and unwrap ``anyOf: [X, null]`` to the object schema underneath."""
    while True:
        if "$ref" in schema:
            name = schema["$ref"].removeprefix("#/components/schemas/")
            schema = document["components"]["schemas"][name]
        elif "anyOf" in schema:
            options = [s for s in schema["anyOf"] if s.get("type") != "null"]
            if len(options) != 1:
                return schema
            schema = options[0]
        else:
            return schema


def operation(document: Document, method: str, template: str) -> dict[str, Any]:
    paths = document["paths"]
    assert template in paths, f"route {template} is not in the recorded contract"
    assert method.lower() in paths[template], (
        f"{method} {template} is not in the recorded contract; it has {sorted(paths[template])}"
    )
    return dict(paths[template][method.lower()])


def request_schema(document: Document, op: dict[str, Any]) -> dict[str, Any] | None:
    body = op.get("requestBody")
    if body is None:
        return None
    return dict(body["content"]["application/json"]["schema"])


def response_schema(document: Document, op: dict[str, Any], status: str = "200") -> dict[str, Any]:
    return dict(op["responses"][status]["content"]["application/json"]["schema"])


def validate(document: Document, schema: dict[str, Any], instance: Any) -> None:
    """Validate ``instance`` against ``schema`` with every ``#/components/...`` ref resolvable."""
    root = {**schema, "components": document["components"]}
    jsonschema.Draft202012Validator(root).validate(instance)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation reaches (``X``, ``list[X]``, ``X | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = get_origin(annotation)
    if origin in (list, Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _models_in(arg)]
    return []


def fields_missing_from_schema(document: Document, model: type[BaseModel], schema: dict[str, Any],
                               where: str = "") -> list[str]:
    """Every field ``model`` reads that the schema does not define, or requires but the schema may omit."""
    resolved = resolve(document, schema)
    properties = resolved.get("properties", {})
    required = set(resolved.get("required", []))
    problems: list[str] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        label = f"{where}{model.__name__}.{key}"
        if key not in properties:
            problems.append(f"{label}: not in schema {resolved.get('title', '?')} (has {sorted(properties)})")
            continue
        if field.is_required() and key not in required:
            problems.append(f"{label}: the client requires it but the schema lets the server omit it")
        for nested in _models_in(field.annotation):
            prop = resolve(document, properties[key])
            inner = prop.get("items", prop) if prop.get("type") == "array" else prop
            problems.extend(fields_missing_from_schema(document, nested, inner, where=f"{label} -> "))
    return problems


def unknown_keys(document: Document, schema: dict[str, Any], instance: Any, where: str = "$") -> list[str]:
    """Keys the client sends that the schema does not define (the server would silently ignore them)."""
    resolved = resolve(document, schema)
    problems: list[str] = []
    if isinstance(instance, dict) and "properties" in resolved:
        properties = resolved["properties"]
        for key, value in instance.items():
            if key not in properties:
                problems.append(f"{where}.{key}: not in schema {resolved.get('title', '?')}")
            else:
                problems.extend(unknown_keys(document, properties[key], value, f"{where}.{key}"))
    elif isinstance(instance, list) and "items" in resolved:
        for i, item in enumerate(instance):
            problems.extend(unknown_keys(document, resolved["items"], item, f"{where}[{i}]"))
    return problems


def _typed(document: Document, schema: dict[str, Any], values: list[str]) -> Any:
    """A query parameter's raw values as the JSON value its schema describes (FastAPI's reading)."""
    options = [resolve(document, s) for s in schema.get("anyOf", [schema])]
    if any(o.get("type") == "array" for o in options):
        return values
    [value] = values
    kinds = {o.get("type") for o in options}
    if "integer" in kinds and value.lstrip("-").isdigit():
        return int(value)
    if "boolean" in kinds and value in ("true", "false"):
        return value == "true"
    return value


def query_problems(document: Document, op: dict[str, Any], params: Any) -> list[str]:
    """Query parameters sent that the route lacks or whose values its schema refuses (an enum, an
    integer's minimum), and required ones not sent. ``params`` is an ``httpx.QueryParams``."""
    declared = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}
    problems = [f"{name}: required, not sent" for name, p in declared.items()
                if p.get("required") and name not in params]
    for name in sorted(set(params.keys())):
        if name not in declared:
            problems.append(f"{name}: the route has no such query parameter (has {sorted(declared)})")
            continue
        schema = declared[name]["schema"]
        try:
            validate(document, schema, _typed(document, schema, params.get_list(name)))
        except jsonschema.ValidationError as exc:
            problems.append(f"{name}={params.get_list(name)}: {exc.message}")
    return problems
