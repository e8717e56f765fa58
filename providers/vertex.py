"""Google Vertex AI: Claude (``vertex_anthropic``) and Gemini (``vertex_gemini``).

Both authenticate with a Google access token (``Authorization: Bearer``), found and
refreshed by :class:`failover.providers._google.GoogleTokens`. A profile's base URL names
its project and location::

    https://{region}-aiplatform.googleapis.com/v1/projects/{project}/locations/{region}
    https://aiplatform.googleapis.com/v1/projects/{project}/locations/global

- ``vertex_anthropic``: Anthropic's Messages body without ``model`` and with
  ``anthropic_version: vertex-2023-10-16``, posted to
  ``{base}/publishers/anthropic/models/{model}:rawPredict`` (``:streamRawPredict`` for
  the SSE stream); replies, streams and errors are Anthropic's.
- ``vertex_gemini``: the ``generateContent`` body posted to
  ``{base}/publishers/google/models/{model}:generateContent``
  (``:streamGenerateContent?alt=sse``); replies, streams and errors are Gemini's.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from failover.errors import ConfigError
from failover.providers._google import GoogleTokens
from failover.providers.anthropic import AnthropicAdapter
from failover.providers.base import ChatRequest, HttpRequest
from failover.providers.gemini import GeminiAdapter

if TYPE_CHECKING:
    from failover.profiles import AuthProfile

__all__ = [
    "VERTEX_ANTHROPIC_VERSION",
    "VertexAnthropicAdapter",
    "VertexGeminiAdapter",
    "vertex_base_url",
]

VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
"""The ``anthropic_version`` Claude on Vertex AI takes (in the body, not a header)."""

_REGION = re.compile(r"[a-z]+(?:-[a-z]+)*\d*|global")
_PROJECT = re.compile(r"[a-z][a-z0-9-]{4,61}[a-z0-9]|[a-z0-9.:-]+")


def vertex_base_url(*, region: str | None, project: str | None) -> str:
    """The Vertex AI base URL of ``project`` in ``region`` (``global``: the global host).

    Raises:
        ConfigError: The region or project is missing or not a valid name.
    """
    if not project or not _PROJECT.fullmatch(project):
        raise ConfigError(
            "a Vertex AI profile needs its Google Cloud project: project='my-project' "
            f"(got {project!r})"
        )
    region = region or "global"
    if not _REGION.fullmatch(region):
        raise ConfigError(f"not a Vertex AI location: {region!r}")
    host = (
        "aiplatform.googleapis.com" if region == "global" else f"{region}-aiplatform.googleapis.com"
    )
    return f"https://{host}/v1/projects/{project}/locations/{region}"


class _Tokens:
    """Shared by both Vertex adapters: the profile's Google access token, fresh."""

    _tokens: GoogleTokens

    @staticmethod
    def base_url_for(*, region: str | None, project: str | None) -> str:
        """The profile's Vertex AI base URL (see :func:`vertex_base_url`)."""
        return vertex_base_url(region=region, project=project)

    async def credentials_for(self, profile: AuthProfile, base_url: str) -> str:
        """``profile``'s access token, refreshed before it expires."""
        return await self._tokens.token_for(profile)


class VertexAnthropicAdapter(_Tokens, AnthropicAdapter):
    """Claude on Vertex AI: the Messages wire through ``rawPredict``/``streamRawPredict``."""

    default_base_url = "https://aiplatform.googleapis.com/v1/projects/-/locations/global"
    catalog_provider = "vertex_anthropic"

    def __init__(self, default_base_url: str | None = None) -> None:
        super().__init__(default_base_url)
        self._tokens = GoogleTokens()

    def build_request(
        self, request: ChatRequest, *, model: str, api_key: str, base_url: str
    ) -> HttpRequest:
        """Build the rawPredict (or streamRawPredict) request."""
        built = super().build_request(request, model=model, api_key="", base_url=base_url)
        payload = json.loads(built.body)
        del payload["model"]
        payload["anthropic_version"] = VERTEX_ANTHROPIC_VERSION
        method = "streamRawPredict" if request.stream else "rawPredict"
        url = f"{base_url}/publishers/anthropic/models/{model}:{method}"
        headers = {"content-type": "application/json", "authorization": f"Bearer {api_key}"}
        return HttpRequest("POST", url, headers, json.dumps(payload).encode())


class VertexGeminiAdapter(_Tokens, GeminiAdapter):
    """Gemini on Vertex AI: the ``generateContent`` wire on ``aiplatform`` paths."""

    @property
    def build_embedding_request(self) -> Any:
        """Not here: Vertex AI embeds through ``:predict``, another wire than AI Studio's."""
        raise AttributeError("vertex_gemini has no embeddings API here (Vertex's :predict)")

    default_base_url = "https://aiplatform.googleapis.com/v1/projects/-/locations/global"

    def __init__(self, default_base_url: str | None = None) -> None:
        super().__init__(default_base_url)
        self._tokens = GoogleTokens()

    def build_request(
        self, request: ChatRequest, *, model: str, api_key: str, base_url: str
    ) -> HttpRequest:
        """Build the generateContent (or streamGenerateContent) request."""
        built = super().build_request(request, model=model, api_key="", base_url=base_url)
        method = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        url = f"{base_url}/publishers/google/models/{model}:{method}"
        headers = {"content-type": "application/json", "authorization": f"Bearer {api_key}"}
        return HttpRequest("POST", url, headers, built.body)
