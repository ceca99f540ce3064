"""Values read from JSON (a checkpoint's config.json) checked against a dataclass's field annotations.

JSON has one number type and no tuples, so a hand-edited or foreign config.json can hold 32.0 where an int
belongs, "0.5" where a float belongs, or a list where a dict belongs; built as it is, such a config fails
later with a message that names neither the field nor the file (`'list' object has no attribute 'items'`),
or is silently accepted. `field_problem` names the first wrong field in one line:

    field_problem({"head_dim": 32.0}, UNetConfig)  # "head_dim: expected an integer, got 32.0 (float)"

Rules: an int is an int and not a bool (JSON true is not 1); a float is any finite int or float, not a bool;
a tuple[int, ...] is a list or tuple of ints; `X | None` also accepts null.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing


def type_name(typ) -> str:
    """What a user reads for an annotation: "an integer", "a list of integers or an integer", ..."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin in (tuple, list):
        return f"a list of {_plural(type_name(args[0]))}" if args else "a list"
    if origin is dict or typ is dict:
        return "an object ({...})"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null",
            list: "a list", tuple: "a list"}.get(typ, getattr(typ, "__name__", str(typ)))


def _plural(name: str) -> str:
    return name.removeprefix("an ").removeprefix("a ") + "s"


def fits(value, typ) -> bool:
    """Whether a JSON value is a valid value of the annotation `typ` (see the module docstring)."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, a) for a in args)
    if origin in (tuple, list) or typ in (tuple, list):
        item = next((a for a in args if a is not Ellipsis), None)  # tuple[int, ...] -> int
        return isinstance(value, (list, tuple)) and (item is None or all(fits(v, item) for v in value))
    if origin is dict or typ is dict:
        return isinstance(value, dict)
    if typ is type(None):
        return value is None
    if typ is bool:
        return isinstance(value, bool)
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if typ is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if typ is str:
        return isinstance(value, str)
    return True  # an annotation this module does not know is not checked


def field_problem(d: dict, cls) -> str | None:
    """The first field of `d` that is unknown to the dataclass `cls` or has the wrong type, in one line;
    None when all fit."""
    hints = typing.get_type_hints(cls)
    return mapping_problem(d, {f.name: (hints[f.name], False) for f in dataclasses.fields(cls)})


def mapping_problem(d: dict, fields: dict, where: str = "") -> str | None:
    """The first key of `d` that is unknown, missing or of the wrong type, in one line (None when all fit).

    Args:
        fields: name -> (annotation, required).
        where: what `d` is (a config section, e.g. "diffusion"), named in front of the message.
    """
    at = f"{where}." if where else ""
    unknown = sorted(set(d) - set(fields))
    if unknown:
        return f"{where + ': ' if where else ''}unknown field(s) {unknown}; known fields are {sorted(fields)}"
    for name, (typ, required) in fields.items():
        if name not in d and required:
            return f"{at}{name} is missing (expected {type_name(typ)})"
        if name in d and not fits(d[name], typ):
            return f"{at}{name}: expected {type_name(typ)}, got {d[name]!r} ({type(d[name]).__name__})"
    return None
