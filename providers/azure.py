"""Azure OpenAI: OpenAI's Chat Completions on a resource's deployments.

``POST {resource}/openai/deployments/{deployment}/chat/completions?api-version=...`` with the
key in an ``api-key`` header. The profile's ``base_url`` is the resource
(``https://NAME.openai.azure.com``), and the chain's model id is the deployment's name; a
profile whose ``base_url`` already ends in ``/openai/deployments/NAME`` names its own
deployment, so the same model can live under different deployment names per resource.

Azure's content filter answers a 400 with ``code: "content_filter"`` (the prompt) or a 200
with ``finish_reason: "content_filter"`` (the answer); both are content-filter outcomes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from failover.errors import ConfigError, ContentFilteredError, ProviderError
from failover.providers.base import ChatRequest, EmbeddingRequest, HttpRequest, load_json
from failover.providers.openai import OTHER_WIRES_FIELDS, OpenAIAdapter

__all__ = ["DEFAULT_API_VERSION", "AzureOpenAIAdapter"]

DEFAULT_API_VERSION = "2024-10-21"
"""The latest GA data-plane API version of Azure OpenAI's chat completions."""


class AzureOpenAIAdapter(OpenAIAdapter):
    """Azure OpenAI's chat completions (see the module's docstring).

    Args:
        api_version: The ``api-version`` query parameter.
    """

    def __init__(self, *, api_version: str = DEFAULT_API_VERSION) -> None:
        super().__init__("", max_tokens_field="max_completion_tokens", rejects=OTHER_WIRES_FIELDS)
        self.api_version = api_version

    def build_request(
        self, request: ChatRequest, *, model: str, api_key: str, base_url: str
    ) -> HttpRequest:
        """Build the deployment's chat-completions request."""
        url = f"{_deployment(base_url, model)}/chat/completions?api-version={self.api_version}"
        headers = {"content-type": "application/json", "api-key": api_key}
        body = json.dumps(self.payload(request, None)).encode()
        return HttpRequest("POST", url, headers, body)

    def build_embedding_request(
        self, request: EmbeddingRequest, *, model: str, api_key: str, base_url: str
    ) -> HttpRequest:
        """Build the deployment's embeddings request (the reply is OpenAI's shape)."""
        url = f"{_deployment(base_url, model)}/embeddings?api-version={self.api_version}"
        headers = {"content-type": "application/json", "api-key": api_key}
        body = json.dumps(self.embedding_payload(request, None)).encode()
        return HttpRequest("POST", url, headers, body)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        """Azure's content-filter 400 is a content-filter outcome; the rest as OpenAI's."""
        if status == 400:
            try:
                data = load_json(body)
            except ProviderError:
                data = None
            error = data.get("error") if isinstance(data, dict) else None
            if isinstance(error, dict) and error.get("code") == "content_filter":
                return ContentFilteredError(
                    str(error.get("message") or "the prompt was blocked by a content filter")[:500],
                    status=status,
                    code="content_filter",
                )
        return super().parse_error(status, headers, body)


def _deployment(base_url: str, model: str) -> str:
    """``{resource}/openai/deployments/{name}``: the profile's own, or named by ``model``."""
    if not base_url:
        raise ConfigError("an azure profile needs base_url='https://<resource>.openai.azure.com'")
    root = base_url.rstrip("/")
    if "/openai/deployments/" not in root:
        root = f"{root}/openai/deployments/{model}"
    return root
