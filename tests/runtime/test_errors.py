"""The errors module's rule holds: every error the package raises on purpose is one of its typed
errors (no bare builtin exception), every error class lives there, and each belongs to a family."""

from __future__ import annotations

import ast
import builtins
import inspect
from pathlib import Path

import pytest

from jedisos_db.runtime import errors

ROOT = Path(__file__).resolve().parents[2]
SCANNED = [ROOT / "src", ROOT / "alembic"]
BUILTIN_EXCEPTIONS = frozenset(name for name, obj in vars(builtins).items()
                               if isinstance(obj, type) and issubclass(obj, BaseException))
FAMILIES = (errors.SetupError, errors.InvalidInputError, errors.StateError)
GROUPS = {errors.JedisosDBError, errors.HindsightError, *FAMILIES}
"""Bases that group errors; every other class is raised and must sit in a family."""


def builtin_raises(source: str, filename: str = "<sample>") -> list[str]:
    """``file:line: raise Name`` for each ``raise`` of a builtin exception class (called or not)."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Raise) or node.exc is None:
            continue
        target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        name = (target.id if isinstance(target, ast.Name)
                else target.attr if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                and target.value.id == "builtins" else None)
        if name in BUILTIN_EXCEPTIONS:
            found.append(f"{filename}:{node.lineno}: raise {name}")
    return found


def error_classes_outside(source: str, filename: str = "<sample>") -> list[str]:
    """Public classes deriving from something named like an exception (``...Error``, ``...Exception``
    or a builtin one): these belong in jedisos_db.runtime.errors."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
            continue
        for base in node.bases:
            name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
            if name in BUILTIN_EXCEPTIONS or name.endswith(("Error", "Exception")):
                found.append(f"{filename}:{node.lineno}: class {node.name}({name})")
    return found


def _sources() -> list[Path]:
    return sorted(p for root in SCANNED for p in root.rglob("*.py"))


PLANTED = '''
def f(x):
    if x == 1:
        raise ValueError("planted")
    if x == 2:
        raise KeyError
    if x == 3:
        raise builtins.RuntimeError("planted") from None
    try:
        pass
    except OSError as exc:
        raise  # a re-raise is fine
    raise InvalidInputError("x", "is fine: typed")

class PlantedError(ValueError):
    pass

class _Internal(Exception):
    pass
'''


def test_the_scans_catch_a_planted_sample() -> None:
    assert builtin_raises(PLANTED) == ["<sample>:4: raise ValueError", "<sample>:6: raise KeyError",
                                       "<sample>:8: raise RuntimeError"]
    assert error_classes_outside(PLANTED) == ["<sample>:15: class PlantedError(ValueError)"]


def test_the_scans_see_the_package() -> None:
    files = _sources()
    assert ROOT / "src" / "jedisos_db" / "runtime" / "errors.py" in files
    assert ROOT / "alembic" / "env.py" in files
    assert len(files) > 40


def test_no_builtin_exception_is_raised_on_purpose() -> None:
    found = [hit for path in _sources() for hit in builtin_raises(path.read_text(), str(path.relative_to(ROOT)))]
    assert found == [], "raise a typed error of jedisos_db.runtime.errors instead:\n" + "\n".join(found)


def test_every_error_class_lives_in_the_errors_module() -> None:
    home = ROOT / "src" / "jedisos_db" / "runtime" / "errors.py"
    found = [hit for path in _sources() if path != home
             for hit in error_classes_outside(path.read_text(), str(path.relative_to(ROOT)))]
    assert found == [], "\n".join(found)


def _raised_classes() -> list[type[errors.JedisosDBError]]:
    return [cls for _, cls in inspect.getmembers(errors, inspect.isclass)
            if issubclass(cls, errors.JedisosDBError) and cls not in GROUPS]


@pytest.mark.parametrize("cls", _raised_classes(), ids=lambda c: c.__name__)
def test_each_error_is_in_one_family_and_named_in_the_rule(cls: type[errors.JedisosDBError]) -> None:
    families = [f.__name__ for f in FAMILIES if issubclass(cls, f)]
    if issubclass(cls, errors.ConflictError):  # by design: names a field, caused by the stored data
        assert families == ["InvalidInputError", "StateError"]
    else:
        assert len(families) == 1, f"{cls.__name__} is in {families or 'no family'}"
    assert f":class:`{cls.__name__}`" in (errors.__doc__ or ""), "the module docstring states the rule for it"


def test_only_servers_that_may_come_back_are_retryable() -> None:
    retryable = {cls.__name__ for cls in _raised_classes() if cls.retryable}
    assert retryable == {"DatabaseUnavailableError", "HindsightUnavailableError",
                         # its kinds: a server at capacity, an async operation still running
                         "HindsightBusyError", "OperationTimeoutError",
                         # the event writer's queue full: the database slower than the producers, or down
                         "BackpressureError"}
    assert all(issubclass(getattr(errors, name), errors.SetupError) for name in retryable)


def test_builtin_compatibility_is_kept() -> None:
    """Callers that catch ValueError / LookupError keep catching the argument and not-found errors."""
    assert issubclass(errors.InvalidInputError, ValueError)
    assert issubclass(errors.DuplicateError, ValueError)
    assert issubclass(errors.NotFoundError, LookupError)
