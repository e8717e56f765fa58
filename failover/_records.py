"""Frozen dataclasses built with less work: the records every request makes.

A frozen dataclass's generated ``__init__`` sets each field through
``object.__setattr__(self, name, value)`` (its own ``__setattr__`` refuses), a call per
field. Two replacements, with the same parameters, defaults, default factories and
signature; everything else (frozen, equality, hashing, repr, ``dataclasses.replace``,
pickling) stays the dataclass's own:

- :func:`built_at_once`, for a class without slots: its instance dictionary is set in one
  call (``ChatRequest``, ``HttpRequest``, ``ChatResult``, ``TokenUsage``, ``Attempt``,
  ``AttemptContext``, ``Completion``: the records of a request's success path, made once
  each per request, where one call beats a call per field);
- :func:`lean_init`, for a slotted class: each slot is set through its descriptor
  (``StreamChunk``).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, TypeVar

__all__ = ["built_at_once", "lean_init"]

T = TypeVar("T")


class _Factory:
    """The default of a field with a default factory (shown as dataclasses shows it)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def built_at_once(cls: type[T]) -> type[T]:
    """Give the frozen dataclass ``cls`` (without slots) an ``__init__`` that sets every
    field at once.

    Raises:
        TypeError: ``cls`` is not such a dataclass, or a field is not a plain ``__init__``
            parameter (keyword-only, ``init=False``), or it has a ``__post_init__``.
    """
    if "__slots__" in cls.__dict__:
        raise TypeError(f"{cls.__name__} must be a frozen dataclass without slots")
    names = [field.name for field in _fields(cls, "a frozen dataclass without slots")]
    body = ", ".join(f"{name!r}: {name}" for name in names)
    return _replace_init(cls, [f"    _set_dict(self, '__dict__', {{{body}}})"], {})


def lean_init(cls: type[T]) -> type[T]:
    """Give the frozen, slotted dataclass ``cls`` an ``__init__`` that sets its slots
    through their descriptors.

    Raises:
        TypeError: As :func:`built_at_once`, for a slotted class.
    """
    if "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a frozen, slotted dataclass")
    fields = _fields(cls, "a frozen, slotted dataclass")
    setters: dict[str, Any] = {}
    lines: list[str] = []
    for number, field in enumerate(fields):
        setters[f"_set{number}"] = cls.__dict__[field.name].__set__
        lines.append(f"    _set{number}(self, {field.name})")
    return _replace_init(cls, lines, setters)


def _fields(cls: type, kind: str) -> tuple[dataclasses.Field[Any], ...]:
    """``cls``'s fields, each a plain ``__init__`` parameter (else TypeError)."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen:
        raise TypeError(f"{cls.__name__} must be {kind}")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__")
    fields = dataclasses.fields(cls)
    for field in fields:
        if not field.init or field.kw_only is True:
            raise TypeError(f"{cls.__name__}.{field.name} is not a plain __init__ parameter")
    return fields


def _replace_init(cls: type[T], body: list[str], namespace: dict[str, Any]) -> type[T]:
    """Compile an ``__init__`` of ``cls``'s parameters running ``body`` and put it in place
    of the generated one (whose signature, annotations and docstring it keeps)."""
    namespace.update(_FACTORY=_FACTORY, _set_dict=object.__setattr__)
    parameters: list[str] = []
    defaults: list[str] = []
    for number, field in enumerate(dataclasses.fields(cls)):  # type: ignore[arg-type]
        name = field.name
        if field.default is not dataclasses.MISSING:
            namespace[f"_default{number}"] = field.default
            parameters.append(f"{name}=_default{number}")
        elif field.default_factory is not dataclasses.MISSING:
            namespace[f"_factory{number}"] = field.default_factory
            parameters.append(f"{name}=_FACTORY")
            defaults.append(f"    if {name} is _FACTORY:\n        {name} = _factory{number}()")
        else:
            parameters.append(name)
    source = f"def __init__(self, {', '.join(parameters)}):\n" + "\n".join(
        defaults + body or ["    pass"]
    )
    exec(compile(source, f"<{cls.__qualname__}.__init__>", "exec"), namespace)
    generated: Any = cls.__init__
    init = namespace["__init__"]
    init.__signature__ = inspect.signature(generated)
    for attribute in ("__annotations__", "__doc__", "__module__", "__qualname__"):
        setattr(init, attribute, getattr(generated, attribute))
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
