"""Checks of a reply that came back whole: the caller's ``accept=`` and the request's schema.

A request whose ``response_format`` is a strict ``json_schema`` gets a reply that must
parse as JSON and validate against that schema (``jsonschema``, imported on first use);
otherwise the reply is rejected and the next model is tried. The caller's ``accept``
function (sync or async) runs after that, on the :class:`~failover.completion.Completion`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from typing import Any

from failover.completion import Accept, Completion
from failover.errors import ConfigError, ReplyRejected
from failover.providers.base import ChatRequest

__all__ = ["ReplyChecks", "strict_schema"]


def strict_schema(request: ChatRequest) -> Mapping[str, Any] | None:
    """The JSON schema a request's reply must match: its ``response_format`` when that is
    a ``json_schema`` with ``strict`` true (``None`` otherwise)."""
    response_format = request.params.get("response_format")
    if response_format is None:  # most requests (and no isinstance through the Mapping ABC)
        return None
    if not isinstance(response_format, Mapping) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    if not isinstance(spec, Mapping) or spec.get("strict") is not True:
        return None
    schema = spec.get("schema")
    return schema if isinstance(schema, Mapping) else None


def _schema_problem(text: str, schema: Mapping[str, Any]) -> str | None:
    """Why ``text`` does not match ``schema`` (``None``: it does)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as bad:
        return f"the reply is not JSON ({bad.msg} at character {bad.pos})"
    import jsonschema  # type: ignore[import-untyped]

    validator_class = jsonschema.validators.validator_for(schema)
    found = jsonschema.exceptions.best_match(validator_class(schema).iter_errors(value))
    if found is None:
        return None
    where = "/".join(str(part) for part in found.absolute_path) or "the top level"
    return f"the reply does not match the schema at {where}: {found.message}"[:300]


class ReplyChecks:
    """What a whole reply must pass: the request's strict schema, then ``accept``.

    Args:
        accept: The caller's check (``None``: none).
        schema: The schema the reply's text must match (``None``: none).
    """

    __slots__ = ("accept", "schema")

    def __init__(self, accept: Accept | None, schema: Mapping[str, Any] | None) -> None:
        if schema is not None:
            import jsonschema

            validator_class = jsonschema.validators.validator_for(schema)
            try:
                validator_class.check_schema(schema)
            except jsonschema.exceptions.SchemaError as error:
                message = f"response_format's json_schema is invalid: {error.message}"
                raise ConfigError(message) from None
        self.accept = accept
        self.schema = schema

    @classmethod
    def of(
        cls, request: ChatRequest, accept: Accept | None, *, check_schema: bool = True
    ) -> ReplyChecks | None:
        """The checks for ``request`` (``None``: nothing to check)."""
        schema = strict_schema(request) if check_schema else None
        if accept is None and schema is None:
            return None
        return cls(accept, schema)

    async def accept_reply(self, completion: Completion) -> bool:
        """Whether ``completion`` passes (an ``accept=`` function, for streams)."""
        try:
            await self.check(completion)
        except ReplyRejected:
            return False
        return True

    async def check(self, completion: Completion) -> None:
        """Pass ``completion``, or raise :class:`~failover.errors.ReplyRejected` saying why."""
        if self.schema is not None and not completion.tool_calls:
            problem = _schema_problem(completion.text, self.schema)
            if problem is not None:
                raise ReplyRejected(problem, completion=completion)
        if self.accept is not None:
            verdict = self.accept(completion)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            if not verdict:
                raise ReplyRejected("accept= rejected the reply", completion=completion)
