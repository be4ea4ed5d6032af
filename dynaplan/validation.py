"""Checks at the public boundary: input models, numbers, times and quoting user input.

Every value a user hands to dynaplan crosses one of these, so that a bad value becomes one
:class:`~dynaplan.errors.DynaplanError` naming where it was, never a pydantic, numpy or Python
error from deeper down:

* :class:`InputModel` — the base of every pydantic model a user fills in (options, inventory,
  cluster state, hardware, SLOs, class schemes, transition costs). Construction
  (``Model(...)``, ``model_validate``, ``model_validate_json``) turns pydantic's multi-line
  ``ValidationError`` into one :class:`~dynaplan.errors.InputError` line
  ``Model.field: what was expected (got <value>)``, and a boolean in a numeric field (``"tp":
  true``, ``{"h100-80gb": True}``) is refused instead of being read as 1.
* :func:`number` — the same rules for plain arguments (forecast loads, times): a real, finite
  number in a stated range; booleans, strings, None and NaN are refused.
* :func:`check_time_s` — times on a state's clock, bounded by :data:`MAX_TIME_S`, beyond which
  the seconds of a transition vanish in floating-point rounding (at 1e308 s, ``t + 420 == t``).
* :func:`excerpt` — the one way messages quote user input: bounded, so a 2,000,000-entry list
  prints as its first entries and its length.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import json
import math
import numbers
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator
from pydantic import ValidationError as PydanticValidationError

from dynaplan.errors import InputError, ValidationError

MAX_TIME_S = 1e12
"""Largest magnitude of a time on a state's clock (s, about 31,700 years). Doubles near 1e12 s
are 0.12 ms apart, so every transition time (65 ms clock changes to 420 s starts) survives
``t + duration``; near 1e15 s (0.125 s apart) a clock change rounds away, near 1e19 s a 420 s
start does, and a state at 1e308 s reported its target "reached at 0.0 s"."""

MAX_DURATION_S = 1e9
"""Longest duration or period an option may give (s, about 31.7 years): epochs, transition times.
Energies (W x s) then stay far below float overflow, where an epoch of 1e308 s made the plan's
energy infinite."""

MAX_GPU_POWER_W = 1e5
"""Highest power of one GPU an input may give (W; data-centre GPUs draw up to about 1 kW)."""

EXCERPT_CHARS = 80
"""Longest quotation of one user value in a message (characters)."""


# ---------------------------------------------------------------------------------- quoting
def excerpt(value, limit: int = EXCERPT_CHARS) -> str:
    """``value`` as the user wrote it, in at most about ``limit`` characters: ``2.5``,
    ``'two'``, ``[0, 1, 2, 3, 4, 5, 6, 7, ... (2,000,000 items)]``; never ``np.float64(2.5)``."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        text = _items(value.ravel()[:8].tolist(), value.size, "[]", limit)
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, (list, tuple, set, frozenset)) and len(value) > 8:
        head = [v for _, v in zip(range(8), value)]
        text = _items(head, len(value), "()" if isinstance(value, tuple) else "[]", limit)
    elif isinstance(value, Mapping) and len(value) > 8:
        body = ", ".join(f"{k!r}: {excerpt(v, limit // 4)}" for k, v in list(value.items())[:8])
        text = f"{{{body}, ... ({len(value):,} entries)}}"
    else:
        text = repr(value)
    if len(text) > limit:
        text = f"{text[:max(limit - 24, 8)]}... ({len(text):,} characters)"
    return text


def _items(head: list, n: int, brackets: str, limit: int) -> str:
    body = ", ".join(excerpt(v, max(limit // 4, 12)) for v in head)
    more = f", ... ({n:,} items)" if n > len(head) else ""
    return f"{brackets[0]}{body}{more}{brackets[1]}"


def _loc_text(model: type | None, loc: tuple) -> str:
    """A pydantic location as Python would write it, ``servers['h100-80gb']``,
    ``instances[3].tp``: field names joined by dots, mapping keys and positions in brackets.
    Which is which follows from the model's annotations (pydantic's ``loc`` does not say)."""
    out, tp = "", model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str) and part in tp.model_fields:
            out += f".{part}" if out else part
            tp = tp.model_fields[part].annotation
            continue
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if part == "[key]":  # pydantic's mark of a mapping key (not its value) at fault
            out += " (the key)"
            continue
        if isinstance(part, int):
            out += f"[{part}]"
            tp = args[0] if args else None
        else:
            out += f"[{part!r}]" if out else str(part)
            tp = args[1] if origin in (dict, Mapping) and len(args) == 2 else None
    return out


def _unwrap(tp):
    """The model, mapping or sequence inside ``Annotated[...]`` or ``X | None``."""
    while True:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Annotated:
            tp = args[0]
        elif origin in (typing.Union, types.UnionType):
            rest = [a for a in args if a is not type(None)]
            tp = rest[0] if len(rest) == 1 else next((a for a in rest if typing.get_origin(a) or (
                isinstance(a, type) and issubclass(a, BaseModel))), rest[0])
        else:
            return tp


def pydantic_message(exc: PydanticValidationError, model: type | str) -> str:
    """One line for the first problem of ``exc``: ``Model.field: message (got value)``, plus how
    many more problems there were."""
    errs = exc.errors()
    err = errs[0]
    loc = tuple(err.get("loc") or ())
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    inner = (err.get("ctx") or {}).get("error")
    if isinstance(inner, InputError) and inner.errors():  # a nested input model, already converted
        first = inner.errors()[0]
        loc += tuple(first.get("loc") or ())
        msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        err = {**first, "input": inner.input_value} if "input" in first else first
    cls = model if isinstance(model, type) else None
    name = model.__name__ if isinstance(model, type) else str(model)
    where = name + ("." + _loc_text(cls, loc) if loc else "")
    if loc and isinstance(loc[-1], str) and msg.startswith(f"{loc[-1]} "):
        msg = msg[len(loc[-1]) + 1:]  # "spill must be ..." after "PlannerOptions.spill:"
    text = f"{where}: {msg}"
    if loc and err.get("type") not in ("missing", "value_error") and "input" in err:
        text += f" (got {excerpt(err['input'])})"
    if len(errs) > 1:
        text += f" (and {len(errs) - 1} more problem{'s' if len(errs) > 2 else ''})"
    return " ".join(text.split())


def _errors_for_caller(exc: PydanticValidationError) -> list[dict]:
    """pydantic's error list with each ``input`` replaced by a bounded excerpt."""
    out = []
    for e in exc.errors():
        e = {k: v for k, v in e.items() if k not in ("ctx", "url")}
        if "input" in e:
            e["input"] = excerpt(e["input"])
        out.append(e)
    return out


def input_error(exc: PydanticValidationError, model: type | str) -> InputError:
    """The :class:`InputError` for a pydantic error raised while building ``model``."""
    errs = exc.errors()
    inner = (errs[0].get("ctx") or {}).get("error")
    if len(errs) == 1 and not errs[0].get("loc") and isinstance(inner, InputError):
        return inner  # model_validate runs __init__, which already converted the error
    name = model.__name__ if isinstance(model, type) else str(model)
    return InputError(pydantic_message(exc, model), _errors_for_caller(exc), name, errs[0].get("input"))


# ---------------------------------------------------------------------------------- models
def _kinds(tp) -> set[str]:
    """Which of 'number' and 'bool' the leaves of a type annotation accept."""
    if tp is bool:
        return {"bool"}
    if tp in (int, float):
        return {"number"}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _kinds(args[0])
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_kinds(a) for a in args))
    if origin in (dict, Mapping) or (isinstance(origin, type) and issubclass(origin, Mapping)):
        return _kinds(args[1]) if len(args) == 2 else set()
    if origin in (tuple, list, set, frozenset) or (isinstance(origin, type) and issubclass(origin, Sequence)):
        return set().union(*(_kinds(a) for a in args if a is not Ellipsis)) if args else set()
    return set()


_NUMERIC_FIELDS: dict[type, tuple[str, ...]] = {}


def _numeric_fields(cls: type[BaseModel]) -> tuple[str, ...]:
    """Fields of ``cls`` whose values are numbers and may not be booleans (cached per class)."""
    got = _NUMERIC_FIELDS.get(cls)
    if got is None:
        got = tuple(name for name, f in cls.model_fields.items()
                    if "number" in (k := _kinds(f.annotation)) and "bool" not in k)
        _NUMERIC_FIELDS[cls] = got
    return got


def _find_bool(value, path: str) -> tuple[str, object] | None:
    """(path, value) of the first boolean inside ``value`` (through mappings and sequences)."""
    if isinstance(value, (bool, np.bool_)):
        return path, value
    if isinstance(value, Mapping):
        for k, v in value.items():
            hit = _find_bool(v, f"{path}[{k!r}]")
            if hit:
                return hit
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            if isinstance(v, (bool, np.bool_, Mapping, list, tuple)):
                hit = _find_bool(v, f"{path}[{i}]")
                if hit:
                    return hit
    return None


class InputModel(BaseModel):
    """Base of the pydantic models users fill in: frozen, no unknown fields, no booleans in
    numeric fields, and errors raised as one-line :class:`~dynaplan.errors.InputError`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **data) -> None:
        try:
            super().__init__(**data)
        except PydanticValidationError as exc:
            raise input_error(exc, type(self)) from None

    @classmethod
    def model_validate(cls, obj, *args, **kwargs):
        try:
            return super().model_validate(obj, *args, **kwargs)
        except PydanticValidationError as exc:
            raise input_error(exc, cls) from None

    @classmethod
    def model_validate_json(cls, json_data, *args, **kwargs):
        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except PydanticValidationError as exc:
            raise input_error(exc, cls) from None

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_in_numbers(cls, data):
        """``True`` is not a count, a clock or a load: refuse it wherever a number is expected."""
        if isinstance(data, Mapping):
            for name in _numeric_fields(cls):
                if name in data:
                    hit = _find_bool(data[name], name)
                    if hit:
                        raise ValueError(f"field {hit[0]}: boolean {hit[1]!r}; expected a number")
        return data


# ---------------------------------------------------------------------------------- arguments
def checked(func):
    """Refuse, at a public entry point, an argument whose type its annotation rules out.

    ``Planner(profile, 40)`` or ``replay(inp, "SinglePool")`` would otherwise fail deep inside
    with a TypeError or AttributeError; with ``@checked`` they raise one
    :class:`ValidationError` naming the function, the argument, what was given and what was
    expected. Only what an annotation states plainly is checked: classes (``Profile``,
    ``Trace``, ``Path``), ``None``, ``Mapping``, ``Callable`` and ``float``/``int``/``str``/``bool``
    (a boolean is not a float or an int); generics other than mappings are left to the function.
    """
    sig = inspect.signature(func)
    name = func.__qualname__.removesuffix(".__init__")
    checks: dict | None = None

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        nonlocal checks
        if checks is None:
            try:
                hints = typing.get_type_hints(func)
            except Exception:  # an annotation that cannot be resolved is not checked
                hints = {}
            checks = {k: c for k, tp in hints.items() if k in sig.parameters and (c := _type_check(tp))}
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise ValidationError(f"{name}: {exc}") from None
        for arg, value in bound.arguments.items():
            check = checks.get(arg)
            if check is not None and not check[0](value):
                raise ValidationError(f"{name}: argument {arg}: {type(value).__name__} {excerpt(value)}; "
                                      f"expected {check[1]}")
        return func(*args, **kwargs)

    return wrapper


def _type_check(tp) -> tuple | None:
    """(predicate, description) for an annotation, or None when it is not checked plainly."""
    if tp is typing.Any or isinstance(tp, typing.TypeVar):
        return None
    if tp is type(None):
        return (lambda v: v is None), "None"
    if tp is bool:
        return (lambda v: isinstance(v, (bool, np.bool_))), "a boolean"
    if tp is float:
        return (lambda v: isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))), "a number"
    if tp is int:
        return (lambda v: isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))), "an integer"
    if tp is str:
        return (lambda v: isinstance(v, str)), "a string"
    if tp is Path:
        return (lambda v: isinstance(v, (str, os.PathLike))), "a path"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _type_check(args[0])
    if origin is typing.Literal:
        return (lambda v: any(v == a and type(v) is type(a) for a in args)), " or ".join(map(repr, args))
    if origin in (typing.Union, types.UnionType):
        parts = [_type_check(a) for a in args]
        if any(p is None for p in parts):
            return None
        return (lambda v: any(p[0](v) for p in parts)), " or ".join(p[1] for p in parts)
    if origin is not None:
        if isinstance(origin, type) and issubclass(origin, Mapping):
            return (lambda v: isinstance(v, Mapping)), "a mapping"
        if origin is collections.abc.Callable:
            return callable, "a callable"
        return None
    if tp is collections.abc.Callable:
        return callable, "a callable"
    if isinstance(tp, type):
        if getattr(tp, "_is_protocol", False) and not getattr(tp, "_is_runtime_protocol", False):
            return None
        return (lambda v: isinstance(v, tp)), tp.__name__
    return None


# ---------------------------------------------------------------------------------- JSON
def loads_json(text: str, source: str):
    """Parse JSON ``text``; a syntax error, or a key repeated within one object (which
    ``json.loads`` would silently resolve to the last value), raises naming ``source``."""
    def pairs(items):
        out = {}
        for k, v in items:
            if k in out:
                raise ValidationError(f"{source}: key {excerpt(k)} appears twice in one JSON object")
            out[k] = v
        return out

    try:
        return json.loads(text, object_pairs_hook=pairs)
    except RecursionError:
        raise ValidationError(f"{source}: JSON nested too deeply") from None
    except ValidationError:
        raise
    except ValueError as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if hasattr(exc, "lineno") else ""
        raise ValidationError(f"{source}: not valid JSON ({getattr(exc, 'msg', exc)}{where})") from None


# ---------------------------------------------------------------------------------- numbers
def number(value, what: str, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           unit: str = "", integer: bool = False) -> float | int:
    """``value`` as a float (or int with ``integer``) if it is a real, finite number in
    [lo, hi] (``(lo, hi]`` with ``lo_open``); otherwise :class:`ValidationError` naming ``what``.

    Booleans, strings, None, NaN and infinities are refused: ``True`` is not a load and
    ``"abc"`` is not a number, whatever ``float()`` would make of them.
    """
    u, per = (f" {unit}", f" ({unit})") if unit else ("", "")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        kind = "boolean" if isinstance(value, (bool, np.bool_)) else type(value).__name__
        raise ValidationError(f"{what} {excerpt(value)} ({kind}): expected a number{per}")
    v = float(value)
    if not math.isfinite(v):
        raise ValidationError(f"{what} {excerpt(v)}: expected a finite number{per}")
    if integer and v != math.floor(v):
        raise ValidationError(f"{what} {excerpt(v)}: expected a whole number{per}")
    if lo is not None and (v < lo or (lo_open and v <= lo)):
        raise ValidationError(f"{what} {excerpt(v)}{u}: expected {'>' if lo_open else '>='} {lo:g}{u}")
    if hi is not None and v > hi:
        raise ValidationError(f"{what} {excerpt(v)}{u}: exceeds the limit of {hi:g}{u}")
    return int(v) if integer else v


def number_array(value, what: str, *, lo: float | None = None, hi: float | None = None, unit: str = "",
                 integer: bool = False) -> np.ndarray:
    """``value`` (a number or an array-like of numbers) as a float array (int64 with
    ``integer``), each element checked as :func:`number` checks one; the error names ``what``
    and the first bad element. Vectorised for numeric arrays."""
    a = np.asarray(value) if not isinstance(value, (bool, np.bool_)) else None
    # numpy makes [3, True] an integer array: look for booleans in a caller's list or tuple
    hidden_bool = isinstance(value, (list, tuple)) and any(
        isinstance(v, (bool, np.bool_)) for v in np.asarray(value, dtype=object).ravel())
    if a is None or hidden_bool or a.dtype == bool or a.dtype.kind not in "iuf":
        if a is None or a.ndim == 0:
            number(value, what, lo=lo, hi=hi, unit=unit, integer=integer)  # raises for a bad scalar
            a = np.asarray(float(value))
        else:
            flat = np.asarray(value, dtype=object).ravel()  # the caller's elements, not numpy's strings of them
            for i, v in enumerate(flat):
                if isinstance(v, np.generic) and not isinstance(v, (np.bool_, np.str_, np.bytes_)):
                    v = v.item()
                number(v, f"{what}[{i}]", lo=lo, hi=hi, unit=unit, integer=integer)
            a = flat.astype(float).reshape(a.shape)
    a = a.astype(float, copy=False)
    bad = ~np.isfinite(a)
    if lo is not None:
        bad |= a < lo
    if hi is not None:
        bad |= a > hi
    if integer:
        bad |= a != np.floor(a)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        v = a.ravel()[i].item()
        number(v, what if a.ndim == 0 else f"{what}[{i}]", lo=lo, hi=hi, unit=unit, integer=integer)
    return a.astype(np.int64) if integer else a


def check_time_s(value, what: str) -> float:
    """A time on a state's clock (s): finite and at most :data:`MAX_TIME_S` in magnitude."""
    return number(value, what, lo=-MAX_TIME_S, hi=MAX_TIME_S, unit="s")


__all__ = ["EXCERPT_CHARS", "InputModel", "MAX_DURATION_S", "MAX_GPU_POWER_W", "MAX_TIME_S", "check_time_s", "checked",
           "excerpt", "input_error", "loads_json", "number", "number_array", "pydantic_message"]
