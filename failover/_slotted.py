"""Frozen, slotted dataclasses made with less work (:mod:`failover._records` does it for
those without slots).

A frozen dataclass's ``__init__`` sets each field with ``object.__setattr__(self, name,
value)`` (its own ``__setattr__`` refuses). A slotted class's fields are slots, and a slot's
descriptor sets it directly: :func:`lean_init` gives such a class an ``__init__`` that does
so, with the same parameters, defaults, default factories and signature. The records made
for every request (the request, its HTTP request, the reply's result and usage) use it.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, TypeVar

__all__ = ["lean_init"]

T = TypeVar("T")


class _Factory:
    """The default of a field with a default factory (shown as dataclasses shows it)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def lean_init(cls: type[T]) -> type[T]:
    """Give the frozen, slotted dataclass ``cls`` an ``__init__`` that sets its slots through
    their descriptors (the one dataclasses made is kept as its ``__signature__``'s source).

    Raises:
        TypeError: ``cls`` is not a frozen, slotted dataclass whose fields are all set by
            ``__init__`` (keyword-only fields, ``init=False`` fields and ``__post_init__``
            are not handled).
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a frozen, slotted dataclass")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__")
    namespace: dict[str, Any] = {"_FACTORY": _FACTORY}
    parameters: list[str] = []
    lines: list[str] = []
    for number, field in enumerate(dataclasses.fields(cls)):  # type: ignore[arg-type]
        if not field.init or field.kw_only is True:
            raise TypeError(f"{cls.__name__}.{field.name} is not a plain __init__ parameter")
        name = field.name
        namespace[f"_set{number}"] = cls.__dict__[name].__set__
        if field.default is not dataclasses.MISSING:
            namespace[f"_default{number}"] = field.default
            parameters.append(f"{name}=_default{number}")
        elif field.default_factory is not dataclasses.MISSING:
            namespace[f"_factory{number}"] = field.default_factory
            parameters.append(f"{name}=_FACTORY")
            lines.append(f"    if {name} is _FACTORY:\n        {name} = _factory{number}()")
        else:
            parameters.append(name)
        lines.append(f"    _set{number}(self, {name})")
    source = f"def __init__(self, {', '.join(parameters)}):\n" + "\n".join(lines or ["    pass"])
    exec(compile(source, f"<lean_init {cls.__qualname__}>", "exec"), namespace)
    generated: Any = cls.__init__
    init = namespace["__init__"]
    init.__signature__ = inspect.signature(generated)
    for attribute in ("__annotations__", "__doc__", "__module__", "__qualname__"):
        setattr(init, attribute, getattr(generated, attribute))
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
