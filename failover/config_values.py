"""Checking a config file's values against the types they are for.

The types are read from annotations as text (``int | None``, ``Literal["a", "b"]``), as
``FailoverConfig``'s fields and ``ResilientClient``'s keyword options declare them; every
error names where the value is and what it should have been.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any, cast

from failover.errors import ConfigError, did_you_mean

__all__ = [
    "SIMPLE_TYPES",
    "as_table",
    "describe",
    "literal_values",
    "no_unknown_keys",
    "toml_type",
    "type_parts",
    "typed",
]

SIMPLE_TYPES: dict[str, tuple[type, ...]] = {
    "bool": (bool,),
    "int": (int,),
    "float": (int, float),
    "str": (str,),
}
_TYPE_WORDS = {
    "bool": "true or false",
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
}


def type_parts(annotation: str) -> list[str]:
    """The parts of a union annotation (``int | None`` -> ``["int", "None"]``)."""
    return [part.strip() for part in annotation.split("|")]


def typed(value: Any, annotation: str, where: str, key: str) -> Any:
    """``value`` if TOML can give it ``annotation``'s type (an int where a float is due is
    made a float); types TOML cannot write (classes, callables) are left to the constructor.
    """
    parts = [part for part in type_parts(annotation) if part != "None"]
    simple = [part for part in parts if part in SIMPLE_TYPES]
    literals = [choice for part in parts for choice in literal_values(part)]
    if not simple and not literals:
        return value  # a type this loader does not know: the constructor checks it
    for part in simple:
        if isinstance(value, bool) and part != "bool":
            continue
        if isinstance(value, SIMPLE_TYPES[part]):
            return float(cast(float, value)) if part == "float" else value
    if not isinstance(value, bool) and value in literals:
        return value
    expected = " or ".join([*(_TYPE_WORDS[part] for part in simple), *map(repr, literals)])
    raise ConfigError(f"{where}: {key} must be {expected}, got {describe(value)}")


def literal_values(part: str) -> tuple[Any, ...]:
    """The choices of a ``Literal[...]`` annotation, or ``()`` for anything else."""
    if not (part.startswith("Literal[") and part.endswith("]")):
        return ()
    try:
        choices = ast.literal_eval(f"({part[len('Literal[') : -1]},)")
    except (ValueError, SyntaxError):
        return ()
    return tuple(choices)


def as_table(value: Any, where: str) -> dict[str, Any]:
    """``value``, which must be a TOML table."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table, got {describe(value)}")
    return value


def no_unknown_keys(values: Mapping[str, Any], known: Any, where: str) -> None:
    """Refuse a key not in ``known``, with a did-you-mean or the known keys."""
    names = list(known)
    for key in values:
        if key not in names:
            hint = did_you_mean(key, names) or f"; known keys: {', '.join(names)}"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


def toml_type(value: Any) -> str:
    """What TOML calls ``value``'s type (a date or time for anything else)."""
    names: dict[type, str] = {
        bool: "boolean",
        int: "integer",
        float: "float",
        str: "string",
        list: "array",
        dict: "as_table",
    }
    return next((name for kind, name in names.items() if isinstance(value, kind)), "date/time")


def describe(value: Any) -> str:
    """``value`` for an error message: its TOML type and its start."""
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{toml_type(value)} {shown}"
