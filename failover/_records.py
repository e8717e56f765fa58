"""Frozen dataclasses built in one step: the records the success path makes per request.

A frozen dataclass's generated ``__init__`` sets each field through ``object.__setattr__``
(a call per field); :func:`built_at_once` gives it one that sets the instance's dictionary
in a single call instead, with the same signature and defaults. Everything else (frozen,
equality, hashing, repr, ``dataclasses.replace``, pickling) is the dataclass's own.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["built_at_once"]

C = TypeVar("C", bound=type)


def built_at_once(cls: C) -> C:
    """Replace the ``__init__`` of the frozen dataclass ``cls`` (without ``__slots__``) by
    one that sets every field at once.

    Raises:
        TypeError: ``cls`` is not such a dataclass, or a field has a default factory, is
            left out of ``__init__`` or is keyword-only (none is supported).
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" in cls.__dict__:
        raise TypeError(f"{cls.__name__} must be a frozen dataclass without slots")
    arguments: list[str] = []
    defaults: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.default_factory is not dataclasses.MISSING or not field.init or field.kw_only:
            raise TypeError(f"{cls.__name__}.{field.name}: default_factory, init=False, kw_only")
        if field.default is dataclasses.MISSING:
            arguments.append(field.name)
        else:
            defaults[field.name] = field.default
            arguments.append(f"{field.name}=_defaults[{field.name!r}]")
    names = [field.name for field in dataclasses.fields(cls)]
    body = ", ".join(f"{name!r}: {name}" for name in names)
    source = (
        f"def __init__(self, {', '.join(arguments)}):\n"
        f"    _set_dict(self, '__dict__', {{{body}}})\n"
    )
    scope: dict[str, Any] = {"_defaults": defaults, "_set_dict": object.__setattr__}
    exec(source, scope)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[misc]
    return cls
