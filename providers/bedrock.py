"""Amazon Bedrock's Converse and ConverseStream APIs, signed with AWS Signature V4.

``POST {base}/model/{modelId}/converse`` (``/converse-stream``): one request shape for
every model family Bedrock hosts; model ids and inference profiles (``us.anthropic...``)
alike. What the caller's OpenAI-shaped request becomes:

- system (and developer) messages -> ``system: [{text}]``; user/assistant turns alternate
  (consecutive same-role messages merged), tool results become ``toolResult`` blocks in a
  user turn, assistant ``tool_calls`` become ``toolUse`` blocks with their parsed ``input``;
- images (data URLs) -> ``image: {format, source: {bytes}}`` (base64 in JSON);
- ``tools`` -> ``toolConfig.tools[].toolSpec`` with ``inputSchema.json``; ``tool_choice``
  auto/required/named -> ``auto``/``any``/``tool`` (``none``: no tools sent);
- ``max_tokens``, ``temperature``, ``top_p``, ``stop`` -> ``inferenceConfig``;
- ``reasoning_effort`` -> Claude's ``thinking`` budget (or ``reasoning_effort`` for
  OpenAI's open models) in ``additionalModelRequestFields``; ``top_k`` there too;
- ``response_format`` -> a forced tool whose input comes back as the answer's text;
- ``cache_control`` markers on content parts, messages and tools (and the request's own
  ``cache_control``: after the last message) -> a ``cachePoint`` block
  (``{"type": "default"}``, with the marker's ``ttl``) after the marked block, for the
  models Bedrock caches for: Claude from 3.5 Haiku and 3.7 Sonnet on (system, messages
  and tools) and Amazon Nova (system and messages); other models' markers are dropped
  (a cache point there would be refused). At most 4, the last ones kept (see
  :mod:`failover.providers._claude`).

Replies: ``output.message.content`` (text, ``toolUse``, ``reasoningContent`` skipped),
``stopReason``, ``usage`` with cache tokens. Streams are binary event-stream frames read by
botocore's parser (``messageStart``, ``contentBlockStart``/``Delta``/``Stop``,
``messageStop``, ``metadata``; exceptions as frames). Errors are named by
``x-amzn-ErrorType`` (``ThrottlingException``, ``ValidationException``, ...).

Credentials (see :class:`failover.providers._aws.BedrockCredentials`): a key pair or a
Bedrock API key on the profile, or the AWS chain; a request is signed for its profile's
region and goes only to that region's host.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlsplit

from failover.catalog import ModelEntry, TokenUsage
from failover.classify import AWS_ERRORS, classify_aws_error
from failover.errors import (
    AuthenticationError,
    ConfigError,
    MalformedResponseError,
    ProviderError,
)
from failover.providers._aws import (
    AwsCredentials,
    BedrockCredentials,
    EventStreamReader,
    default_region,
    region_of_host,
    sign_v4,
)
from failover.providers._claude import (
    JSON_TOOL,
    MAX_BREAKPOINTS,
    THINKING_BUDGETS,
    ReplyBlocks,
    StreamBlocks,
    cap_breakpoints,
    check_stop,
    claude_messages,
    finish,
    output_limit,
    read_claude_usage,
    thinking_unsupported,
)
from failover.providers.base import (
    BaseAdapter,
    ChatRequest,
    ChatResult,
    HttpRequest,
    StreamChunk,
    catalog_unsupported,
    check_params,
    first_unknown,
    guarded,
    has_part,
    load_json,
    max_output_tokens,
)
from failover.providers.messages import (
    Audio,
    Image,
    marker_of,
    read_response_format,
    read_stop,
    read_tool_choice,
    read_tools,
)

if TYPE_CHECKING:
    from failover.profiles import AuthProfile

__all__ = ["BEDROCK_ERRORS", "JSON_TOOL", "BedrockAdapter", "bedrock_error"]

_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}

_TRANSLATED = frozenset(
    {
        "tools",
        "tool_choice",
        "response_format",
        "stop",
        "top_p",
        "top_k",
        "reasoning_effort",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "parallel_tool_calls",
        "cache_control",
    }
)
_DROPPED = frozenset({"user", "metadata", "store", "stream_options", "service_tier"})
_NATIVE = frozenset(
    {
        "additionalModelRequestFields",
        "additionalModelResponseFieldPaths",
        "guardrailConfig",
        "performanceConfig",
        "promptVariables",
        "requestMetadata",
    }
)
"""Converse's own fields: passed through as given."""
BEDROCK_ERRORS = AWS_ERRORS
"""Bedrock's exception names -> errors (see :data:`failover.classify.AWS_ERRORS`)."""
_STREAM_EXCEPTION_STATUS = {
    "throttlingException": 429,
    "serviceUnavailableException": 503,
    "internalServerException": 500,
    "modelStreamErrorException": 424,
    "validationException": 400,
    "modelTimeoutException": 408,
}


def bedrock_error(
    status: int, error_type: str | None, message: str, headers: Mapping[str, str] | None = None
) -> ProviderError:
    """The ProviderError a Bedrock error stands for, from its exception name (as in
    ``x-amzn-ErrorType`` or a stream's exception frame) and HTTP status."""
    return classify_aws_error(status, error_type, message, headers)


_USAGE = ("inputTokens", "outputTokens", "cacheReadInputTokens", "cacheWriteInputTokens")


def _usage(usage: Any) -> TokenUsage | None:
    return read_claude_usage(usage, "bedrock", _USAGE)


def _image(part: Image, where: str) -> dict[str, Any]:
    if part.data is None:
        raise ConfigError(f"{where}: Bedrock takes images as data URLs only (no https URLs)")
    mime = part.guessed_mime_type()
    image_format = _IMAGE_FORMATS.get(mime)
    if image_format is None:
        raise ConfigError(f"{where}: Bedrock takes png, jpeg, gif or webp images, not {mime}")
    return {"image": {"format": image_format, "source": {"bytes": part.data}}}


def _cache_point(marker: Mapping[str, Any], long_ttl: bool) -> dict[str, Any]:
    """Converse's ``cachePoint`` block for a ``cache_control`` marker: its ``ttl`` kept,
    but ``1h`` only where the model takes it (``long_ttl``; elsewhere the default 5
    minutes, rather than a refusal)."""
    point: dict[str, Any] = {"type": "default"}
    ttl = marker.get("ttl")
    if ttl == "5m" or (ttl == "1h" and long_ttl):
        point["ttl"] = ttl
    return {"cachePoint": point}


_CLAUDE_VERSION = re.compile(r"claude-(?:opus|sonnet|haiku)-(\d+)(?:-(\d)(?!\d))?")


def _long_ttl(model: str) -> bool:
    """Whether Bedrock takes a one-hour cache point for ``model``: Claude 4.5 on."""
    found = _CLAUDE_VERSION.search(model)
    if found is None:
        return False
    major, minor = int(found.group(1)), int(found.group(2) or 0)
    return (major, minor) >= (4, 5)


_UNCACHED_CLAUDE = ("claude-instant", "claude-v2", "claude-3-haiku", "claude-3-sonnet")
_UNCACHED_CLAUDE_TOO = ("claude-3-opus", "claude-3-5-sonnet")
"""Claude models Bedrock serves without prompt caching: a ``cachePoint`` there is a
ValidationException ("You invoked an unsupported model or your request did not allow
prompt caching"), which would stop the request, so their markers are dropped."""


def _caches(model: str) -> tuple[bool, bool]:
    """(whether ``model`` takes cache points in system and messages, and in tools):
    Claude from 3.5 Haiku and 3.7 Sonnet on, in all three; Amazon Nova in the first two."""
    claude = "anthropic.claude" in model and not any(
        name in model for name in (*_UNCACHED_CLAUDE, *_UNCACHED_CLAUDE_TOO)
    )
    return claude or "amazon.nova" in model, claude


class _Blocks:
    """Converse's content blocks (see :func:`claude_messages`); cache points only when
    the model caches."""

    wire = "Bedrock's Converse"
    id_limit: int | None = 64  # toolUseId: [a-zA-Z0-9_-]+, up to 64 characters

    def __init__(self, caching: bool, long_ttl: bool) -> None:
        self.caching = caching
        self.long_ttl = long_ttl
        self.marks = 0

    def mark(self, blocks: list[dict[str, Any]], marker: Mapping[str, Any]) -> None:
        if self.caching and "cachePoint" not in blocks[-1]:
            blocks.append(_cache_point(marker, self.long_ttl))
            self.marks += 1

    @staticmethod
    def system(text: str) -> dict[str, Any] | None:
        return {"text": text} if text else None

    text = system

    @staticmethod
    def image(part: Image, where: str) -> dict[str, Any]:
        return _image(part, where)

    @staticmethod
    def tool_use(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
        return {"toolUse": {"toolUseId": call_id, "name": name, "input": arguments}}

    @staticmethod
    def tool_result(call_id: str, text: str) -> dict[str, Any]:
        return {"toolResult": {"toolUseId": call_id, "content": [{"text": text or "(empty)"}]}}


def _parse_key(api_key: str, base_url: str) -> tuple[str, AwsCredentials | str]:
    """(region, SigV4 credentials or a bearer token) from what build_request is given."""
    host_region = region_of_host(urlsplit(base_url).hostname or "")
    kind, _, rest = api_key.partition(" ")
    if kind == "sigv4":
        region, *parts = rest.split(" ")
        if len(parts) not in (2, 3):
            raise ConfigError("bedrock: malformed resolved credentials")
        return region, AwsCredentials(parts[0], parts[1], parts[2] if len(parts) == 3 else None)
    if kind == "bearer" and rest:
        return host_region or "us-east-1", rest
    pieces = api_key.split(":")
    if len(pieces) in (2, 3) and re.fullmatch(r"(?:AKIA|ASIA|AKID)[A-Z0-9]+", pieces[0]):
        token = pieces[2] if len(pieces) == 3 else None
        return host_region or "us-east-1", AwsCredentials(pieces[0], pieces[1], token)
    if not api_key:
        raise AuthenticationError("bedrock: no credentials (give a key or use the AWS chain)")
    return host_region or "us-east-1", api_key


class BedrockAdapter(BaseAdapter):
    """Translates OpenAI-shaped requests to Converse (see the module's docstring)."""

    api = "bedrock"
    default_base_url = "https://bedrock-runtime.us-east-1.amazonaws.com"
    stream_format: Literal["sse", "ndjson", "eventstream"] = "eventstream"

    def __init__(self, default_base_url: str | None = None) -> None:
        super().__init__(default_base_url)
        self._credentials = BedrockCredentials()

    @staticmethod
    def base_url_for(*, region: str | None, project: str | None = None) -> str:
        """The Bedrock runtime host of ``region`` (default: ``AWS_REGION``)."""
        return f"https://bedrock-runtime.{default_region(region)}.amazonaws.com"

    async def credentials_for(self, profile: AuthProfile, base_url: str) -> str:
        """``profile``'s credentials, fresh, in the form :meth:`build_request` takes."""
        return await self._credentials.key_for(profile, base_url)

    def unsupported_field(self, request: ChatRequest, model: ModelEntry) -> str | None:
        """What Converse cannot express, or the catalog says the model cannot take."""
        check_params(request.params)
        params = request.params
        if has_part(request, Audio):
            return "input_audio"
        if any(
            isinstance(part, Image) and part.data is None
            for turn in request.turns()
            for part in turn.parts
        ):
            return "image_url"
        if (n := params.get("n")) is not None and n != 1:
            return "n"
        for name in ("presence_penalty", "frequency_penalty", "seed"):
            if params.get(name) not in (None, 0, 0.0):
                return name
        for name in ("logprobs", "top_logprobs", "logit_bias"):
            if params.get(name) not in (None, False, 0, {}):
                return name
        effort = params.get("reasoning_effort")
        if effort is not None and effort != "none" and _reasoning(model.id, str(effort)) is None:
            return "reasoning_effort"
        if params.get("top_k") is not None and "anthropic." not in model.id:
            return "top_k"
        if "anthropic.claude" in model.id:
            if refused := thinking_unsupported(request, schema_is_native=False):
                return refused
        elif params.get("response_format") is not None and params.get("tools"):
            return "response_format"  # the forced JSON tool cannot be combined with tools
        unknown = first_unknown(params, _TRANSLATED | _DROPPED | _NATIVE)
        return unknown or catalog_unsupported(request, model)

    def build_request(
        self, request: ChatRequest, *, model: str, api_key: str, base_url: str
    ) -> HttpRequest:
        """Build and sign the Converse (or ConverseStream) request."""
        params = request.params
        caching, caching_tools = _caches(model)
        blocks = _Blocks(caching, _long_ttl(model))
        system, messages = claude_messages(request, blocks)
        payload: dict[str, Any] = {"messages": messages}
        if system:
            payload["system"] = system
        inference: dict[str, Any] = {}
        if (limit := max_output_tokens(request)) is not None:
            inference["maxTokens"] = limit
        if request.temperature is not None:
            inference["temperature"] = request.temperature
        if params.get("top_p") is not None:
            inference["topP"] = params["top_p"]
        if stop := read_stop(params.get("stop")):
            inference["stopSequences"] = stop
        extra: dict[str, Any] = {}
        if params.get("top_k") is not None:
            extra["top_k"] = params["top_k"]
        effort = params.get("reasoning_effort")
        if effort is not None and effort != "none":
            extra.update(_reasoning(model, str(effort)) or {})
            budget = extra.get("thinking", {}).get("budget_tokens")
            if budget:  # the budget comes on top of the answer's own limit, as on Anthropic
                inference["maxTokens"] = output_limit(request, "bedrock", model) + budget
        if inference:
            payload["inferenceConfig"] = inference
        used = [call.name for turn in request.turns() for call in turn.tool_calls]
        tools_caching = _long_ttl(model) if caching_tools else None
        self._tools(payload, params, list(dict.fromkeys(used)), tools_caching)
        tools = payload.get("toolConfig", {}).get("tools", [])
        if blocks.marks + sum("cachePoint" in tool for tool in tools) > MAX_BREAKPOINTS:
            groups = [tools, system, *(message["content"] for message in messages)]
            cap_breakpoints(groups, "cachePoint", separate=True)
        if extra:
            payload["additionalModelRequestFields"] = extra
        for key in _NATIVE:
            if key in params:
                if key == "additionalModelRequestFields" and isinstance(params[key], Mapping):
                    payload[key] = {**extra, **params[key]}
                else:
                    payload[key] = params[key]
        action = "converse-stream" if request.stream else "converse"
        url = f"{base_url}/model/{quote(model, safe=':')}/{action}"  # as Anthropic's SDK
        body = json.dumps(payload).encode()
        headers = {
            "content-type": "application/json",
            "accept": "application/vnd.amazon.eventstream"
            if request.stream
            else "application/json",
        }
        region, credentials = _parse_key(api_key, base_url)
        host_region = region_of_host(urlsplit(base_url).hostname or "")
        if host_region is not None and host_region != region:
            raise ConfigError(
                f"bedrock: credentials for {region} would be sent to {host_region}'s host; a "
                "signed request goes only to its own region"
            )
        if isinstance(credentials, str):
            headers["authorization"] = f"Bearer {credentials}"
        else:
            headers = sign_v4("POST", url, headers, body, credentials, region)
        return HttpRequest("POST", url, headers, body)

    @staticmethod
    def _tools(
        payload: dict[str, Any], params: Mapping[str, Any], used: list[str], caching: bool | None
    ) -> None:
        """``toolConfig``. Converse refuses a history with tool blocks and no toolConfig:
        tools the history used but the request does not declare are declared bare. A
        marked tool is followed by a cache point when the model caches tools (``caching``
        not ``None``: whether it takes a one-hour one)."""
        specs = read_tools(params.get("tools"))
        choice = read_tool_choice(params.get("tool_choice"))
        json_mode = read_response_format(params.get("response_format"))
        declared = {spec.name for spec in specs}
        bare = [
            {"toolSpec": {"name": name, "inputSchema": {"json": {"type": "object"}}}}
            for name in used
            if name not in declared and name != JSON_TOOL
        ]
        if json_mode is not None:
            schema = dict(json_mode.schema) if json_mode.schema is not None else {"type": "object"}
            spec = {
                "name": JSON_TOOL,
                "description": "Answer with a JSON object.",
                "inputSchema": {"json": schema},
            }
            payload["toolConfig"] = {
                "tools": [{"toolSpec": spec}, *bare],
                "toolChoice": {"tool": {"name": JSON_TOOL}},
            }
            return
        if not specs and not bare:
            return
        if choice is not None and choice.mode == "none" and not bare:
            return
        tools = []
        for tool in specs:
            spec = {
                "name": tool.name,
                "inputSchema": {
                    "json": dict(tool.parameters or {"type": "object", "properties": {}})
                },
            }
            if tool.description:
                spec["description"] = tool.description
            tools.append({"toolSpec": spec})
            if caching is not None and (marker := marker_of(tool)) is not None:
                tools.append(_cache_point(marker, caching))
        config: dict[str, Any] = {"tools": [*tools, *bare]}
        if choice is not None and choice.mode != "none":
            if choice.mode == "required":
                config["toolChoice"] = {"any": {}}
            elif choice.mode == "tool":
                config["toolChoice"] = {"tool": {"name": choice.name}}
            else:
                config["toolChoice"] = {"auto": {}}
        payload["toolConfig"] = config

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        """Read Bedrock's error: its exception name from ``x-amzn-ErrorType`` (or the
        body's ``__type``) and its ``message``."""
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        lowered = {str(k).lower(): str(v) for k, v in headers.items()}
        name = lowered.get("x-amzn-errortype") or str(data.get("__type", "")).rpartition("#")[2]
        message = data.get("message") or data.get("Message") or ""
        if not isinstance(message, str):
            message = json.dumps(message)[:500]
        if not name:
            return super().parse_error(status, headers, body)
        return bedrock_error(status, name, message, lowered)

    @guarded
    def parse_response(self, body: bytes) -> ChatResult:
        """Read ``output.message``; a guardrail stop or context overflow raises."""
        data = load_json(body)
        if not isinstance(data, dict):
            raise MalformedResponseError("reply is not an object")
        message = (data.get("output") or {}).get("message")
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            raise MalformedResponseError(f"reply has no output.message.content: {str(body)[:200]}")
        raw = data.get("stopReason")
        check_stop(raw, "stopReason")
        blocks = ReplyBlocks()
        for number, block in enumerate(message["content"]):
            if not isinstance(block, dict):
                raise MalformedResponseError(f"content[{number}] is not an object")
            if "text" in block:
                blocks.text(block["text"], number)
            elif "toolUse" in block:
                use = block["toolUse"]
                if not isinstance(use, dict):
                    raise MalformedResponseError(f"content[{number}] is not a toolUse block")
                blocks.tool(use.get("name"), use.get("toolUseId"), use.get("input"), number)
        usage = _usage(data.get("usage"))
        return ChatResult(
            "".join(blocks.texts),
            finish(raw, blocks.json_tool),
            usage or TokenUsage(),
            data,
            tuple(blocks.calls),
            raw,
            usage_known=usage is not None,
        )

    def stream_parser(self) -> BedrockStream:
        """A parser for ConverseStream's event-stream frames."""
        return BedrockStream()


def _reasoning(model: str, effort: str) -> dict[str, Any] | None:
    """The ``additionalModelRequestFields`` that ask ``model`` to reason, or ``None``."""
    if "anthropic.claude" in model:
        budget = THINKING_BUDGETS.get(effort, THINKING_BUDGETS["medium"])
        return {"thinking": {"type": "enabled", "budget_tokens": budget}}
    if "openai.gpt-oss" in model:
        return {"reasoning_effort": effort if effort in ("low", "medium", "high") else "medium"}
    return None


class BedrockStream:
    """Reads ConverseStream: feed it the body's bytes (:meth:`feed_bytes`)."""

    def __init__(self) -> None:
        self.complete = False
        self._frames: EventStreamReader | None = None
        self._blocks = StreamBlocks()
        self._stopped: str | None = None

    def feed_bytes(self, data: bytes) -> Iterator[StreamChunk]:
        """Take the next bytes of the body; yield the chunks of the frames they complete.

        Raises:
            ProviderError: An exception frame (throttling, ...), or a broken frame.
        """
        if self._frames is None:
            self._frames = EventStreamReader()
        try:
            frames = list(self._frames.feed(data))
        except ProviderError:
            raise
        except Exception as exc:  # botocore's ParserError, ChecksumMismatch, ...
            raise MalformedResponseError(f"not an event stream: {type(exc).__name__}") from None
        for kind, name, payload in frames:
            if kind != "event":
                text = payload.decode("utf-8", "replace")
                try:
                    message = json.loads(text).get("message", text)
                except (ValueError, AttributeError):
                    message = text
                status = _STREAM_EXCEPTION_STATUS.get(name, 500)
                raise bedrock_error(status, name, str(message))
            chunk = self.feed(name, payload.decode("utf-8", "replace"))
            if chunk is not None:
                yield chunk

    @guarded
    def feed(self, event: str, data: str) -> StreamChunk | None:
        """Parse one event's JSON payload."""
        payload = load_json(data)
        if not isinstance(payload, dict):
            raise MalformedResponseError("stream event is not an object")
        if event == "contentBlockStart":
            start = (payload.get("start") or {}).get("toolUse")
            index = payload.get("contentBlockIndex")
            if not isinstance(start, dict) or not isinstance(index, int):
                return None
            return self._blocks.start(index, start.get("name"), start.get("toolUseId"))
        if event == "contentBlockDelta":
            delta = payload.get("delta") or {}
            index = payload.get("contentBlockIndex")
            if isinstance(delta.get("text"), str):
                return StreamChunk(delta["text"]) if delta["text"] else None
            use = delta.get("toolUse")
            if isinstance(use, dict) and isinstance(use.get("input"), str) and use["input"]:
                return self._blocks.arguments(index, use["input"])
            return None
        if event == "messageStop":
            stop = payload.get("stopReason")
            check_stop(stop, "stopReason")
            self._stopped = str(stop)
            return StreamChunk("", finish(stop, bool(self._blocks.json_blocks)), None, (), stop)
        if event == "metadata":
            if self._stopped is None:
                raise MalformedResponseError("metadata before messageStop")
            self.complete = True
            usage = _usage(payload.get("usage"))
            return StreamChunk(usage=usage) if usage is not None else None
        return None
