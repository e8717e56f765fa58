"""The same model on several clouds: one name, each cloud's own id.

A chain step ``{"model": "claude-sonnet-4-5", "on": ["anthropic", "bedrock",
"vertex_anthropic"]}`` becomes the deployment group ``anthropic/claude-sonnet-4-5``,
``bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0`` and
``vertex_anthropic/claude-sonnet-4-5@20250929``: Bedrock's id is found among the ids
genai-prices knows for AWS (a cross-region inference profile, ``us.`` by default), and
Vertex's Claude id is the model's name with the date of its release (``@YYYYMMDD``). Any
cloud's id can be given instead: ``"on": {"bedrock": "eu.anthropic.claude-...", ...}``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from failover.catalog import canonical_provider
from failover.errors import ConfigError

__all__ = ["BEDROCK_PROFILE_PREFIX", "cloud_model_id", "same_model_ids"]

BEDROCK_PROFILE_PREFIX = "us."
"""The inference-profile prefix given to a Bedrock id found by name (``us.``, ``eu.``,
``apac.``, ``global.``: name the id in ``on`` to choose another)."""

_DATED = re.compile(r"^(?P<name>.+?)-(?P<date>\d{8})$")


@functools.lru_cache(maxsize=256)
def _bedrock_base_id(model: str) -> str | None:
    """The Bedrock base id of ``model`` (``anthropic.claude-sonnet-4-5-20250929-v1:0``)
    from the AWS ids genai-prices knows, or ``None``."""
    from genai_prices import data_snapshot  # lazy: a large data module

    snapshot = data_snapshot.get_snapshot()
    pattern = re.compile(
        r"^(?:regional\.|global\.)?(?P<base>[a-z0-9-]+\." + re.escape(model) + r"(?:-\d{8})?"
        r"(?:-v\d+(?::\d+)?)?)$"
    )
    found: list[tuple[int, str]] = []
    for provider in snapshot.providers:
        if provider.id != "aws":
            continue
        for entry in provider.models:
            match = pattern.match(entry.id)
            if match is not None:
                found.append((0 if entry.id.startswith("regional.") else 1, match["base"]))
    return min(found)[1] if found else None


def cloud_model_id(model: str, cloud: str) -> str:
    """``model``'s id on ``cloud`` (``bedrock``, ``vertex_anthropic``, or any provider
    whose id is the model's own name).

    Raises:
        ConfigError: Bedrock's id of ``model`` cannot be found (name it in ``on``).
    """
    cloud = canonical_provider(cloud)
    if cloud == "bedrock":
        if "." in model:  # already a Bedrock id
            return model
        base = _bedrock_base_id(model)
        if base is None:
            raise ConfigError(
                f"no Bedrock id known for {model!r}; name it: "
                f'"on": {{"bedrock": "us.anthropic.{model}-YYYYMMDD-v1:0"}}'
            )
        prefix = BEDROCK_PROFILE_PREFIX if base.startswith(("anthropic.", "meta.")) else ""
        return prefix + base
    if cloud == "vertex_anthropic":
        if "@" in model:
            return model
        dated = _DATED.match(model)
        if dated is not None:
            return f"{dated['name']}@{dated['date']}"
        base = _bedrock_base_id(model)
        release = re.search(r"-(\d{8})(?:-v\d|$)", base or "")
        return f"{model}@{release.group(1)}" if release else model
    return model


def same_model_ids(step: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``provider/model`` ids of a ``{"model": ..., "on": [...]}`` step, in order.

    ``on`` is a list of provider names, or a mapping of provider name to its own id (or
    ``None`` for the id found by name).

    Raises:
        ConfigError: The step is not of that shape, or a cloud's id cannot be found.
    """
    model, on = step.get("model"), step.get("on")
    unknown = sorted(set(step) - {"model", "on", "name"})
    if unknown:
        raise ConfigError(f"a {{model, on}} step has no key {', '.join(map(str, unknown))}")
    if not isinstance(model, str) or not model or "/" in model:
        raise ConfigError(
            f'a {{model, on}} step names its model without a provider, e.g. "claude-sonnet-4-5"; '
            f"got {model!r}"
        )
    if isinstance(on, Mapping):
        pairs = list(on.items())
    elif isinstance(on, Sequence) and not isinstance(on, str):
        pairs = [(cloud, None) for cloud in on]
    else:
        raise ConfigError(f"on must be a list of providers (or provider -> id); got {on!r}")
    if not pairs:
        raise ConfigError(f"on names no provider for {model!r}")
    ids = []
    for cloud, given in pairs:
        if not isinstance(cloud, str) or not cloud:
            raise ConfigError(f"on: {cloud!r} is not a provider name")
        if given is not None and not isinstance(given, str):
            raise ConfigError(f"on: the id for {cloud!r} must be a string, got {given!r}")
        ids.append(f"{cloud}/{given or cloud_model_id(model, cloud)}")
    return tuple(ids)
