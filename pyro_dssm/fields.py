"""Config fields coerced to their declared types, so that every way of writing a value means the same.

YAML 1.1 (PyYAML) reads ``3e-3`` as the *string* ``"3e-3"`` (its floats need a dot:
``3.0e-3``), and ``--model-option lr=3e-3`` goes through the same parser. A config
dataclass calls :func:`coerce_fields` first thing in ``__post_init__``: a ``float``
field then takes ``3e-3``, ``1e-3``, ``0.001`` or ``1``; an ``int`` field takes
``16`` or ``"16"`` (and ``1e3`` when it is a whole number); anything else is refused
with an error that names the field and the value.
"""

from __future__ import annotations

import dataclasses
import numbers
import typing
from typing import Any, Dict, Tuple

__all__ = ["coerce_fields", "coerce_value", "check_positive_int", "check_positive_ints"]

_HINTS: Dict[type, Dict[str, Any]] = {}


def _hints(cls: type) -> Dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _number(value: Any, field: str, where: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{where} field {field!r} must be a number, got the boolean {value!r}")
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{where} field {field!r} must be a number, got {value!r}")


def _one(value: Any, tp: Any, field: str, where: str) -> Any:
    if tp is Any:
        return value
    if tp is float:
        return _number(value, field, where)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        f = _number(value, field, where) if not isinstance(value, bool) else None
        if f is None or not f.is_integer():
            raise ValueError(f"{where} field {field!r} must be an integer, got {value!r}")
        return int(f)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{where} field {field!r} must be true or false, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{where} field {field!r} must be a string, got {value!r}")
    origin = typing.get_origin(tp)
    if origin in (dict, Dict):
        if isinstance(value, dict):
            return value
        raise ValueError(f"{where} field {field!r} must be a mapping, got {value!r}")
    if origin is typing.Union:
        return _union(value, typing.get_args(tp), field, where)
    return value  # other declared types (e.g. a spec object) are checked by the dataclass itself


def _union(value: Any, options: Tuple[Any, ...], field: str, where: str) -> Any:
    if value is None:
        if type(None) in options:
            return None
        raise ValueError(f"{where} field {field!r} must not be null")
    rest = [t for t in options if t is not type(None)]
    # a value already of one of the types stays as it is (devices: 2 and devices: "auto")
    for t in rest:
        if t in (int, float, str, bool) and type(value) is t:
            return value
    errors = []
    for t in rest:
        try:
            return _one(value, t, field, where)
        except ValueError as e:
            errors.append(str(e))
    raise ValueError(errors[0] if len(errors) == 1 else f"{where} field {field!r}: no type of "
                     f"{[getattr(t, '__name__', str(t)) for t in rest]} accepts {value!r}")


def coerce_value(cls: type, name: str, value: Any, where: str = "config") -> Any:
    """``value`` as the type that the dataclass ``cls`` declares for its field ``name``."""
    return _one(value, _hints(cls).get(name, Any), name, where)


def coerce_fields(obj: Any, where: str = "config") -> None:
    """Coerce every field of the dataclass instance ``obj`` to its declared type, in place (frozen too).

    Raises:
        ValueError: a value that is not of the field's type and cannot be read as one,
        naming the field and the value.
    """
    cls = type(obj)
    for f in dataclasses.fields(obj):
        old = getattr(obj, f.name)
        new = coerce_value(cls, f.name, old, where)
        if new is not old:
            object.__setattr__(obj, f.name, new)


def check_positive_int(value: Any, what: str) -> int:
    """``value`` as an int when it is a positive integer (not a bool); else ``ValueError``
    ``"{what} must be a positive integer, got ..."``."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def check_positive_ints(obj: Any, names: Tuple[str, ...], prefix: str = "") -> None:
    """:func:`check_positive_int` on each attribute ``names`` of ``obj``, named ``prefix + name``."""
    for name in names:
        check_positive_int(getattr(obj, name), f"{prefix}{name}")
