"""The simulator's prompt cache: a prefix one key sent within a TTL is read from the cache.

Providers keep prompt caches per organisation (key) and deployment (model); a request
whose prompt starts with a prefix that the same key sent the same model recently is billed
for that prefix at the cached price and reports it in its usage. The simulator does the
same, so failover that keeps a conversation on one key (session affinity) shows its worth
with no keys:

- **Implicit caching** (OpenAI Chat and Responses, Azure, Gemini, Vertex Gemini): every
  prompt is cached whole; a request reads the longest earlier prefix, message by message,
  among the system prompt, tools and all its messages but the last. Reported as OpenAI's
  ``prompt_tokens_details.cached_tokens`` / Responses' ``input_tokens_details.cached_tokens``
  (the prompt count includes them) and Gemini's ``cachedContentTokenCount``.
- **Explicit caching** (Anthropic, Vertex Claude, Bedrock Converse): as Anthropic documents
  it, only a prefix ending at a breakpoint is cached: a block (tool, system block, message
  block) carrying ``cache_control`` (Bedrock: a ``cachePoint`` block after it; Anthropic's
  top-level ``cache_control`` puts one on the last block). Without a breakpoint nothing is
  cached. A request reads the longest prefix written earlier that ends within 20 blocks
  before one of its breakpoints, and writes up to its last breakpoint: reported as
  ``cache_read_input_tokens`` / ``cache_creation_input_tokens`` (Bedrock
  ``cacheReadInputTokens`` / ``cacheWriteInputTokens``), ``input_tokens`` being the rest.

Tokens are counted the way the simulator counts a prompt: characters / 4, over the same
characters (tools and Gemini's system instruction are part of the prefix but count no
tokens, as in the simulator's ``prompt_tokens``). There is no minimum prefix length (real
providers cache only from about 1,024 tokens). Ollama reports no cached tokens.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_CACHE_TTL", "CacheHit", "Prefix", "PromptCache", "prefix_of"]

DEFAULT_CACHE_TTL = 300.0
"""Seconds a cached prefix lives after its last use (the providers' five minutes)."""

LOOKBACK = 20
"""Blocks before a breakpoint where an explicit cache looks for an earlier entry
(Anthropic's documented lookback)."""

_MAX_ENTRIES = 100_000
"""Prefixes kept per key and model (the least recently used go first)."""


@dataclass(frozen=True, slots=True)
class Prefix:
    """A request's prompt as the cache sees it: a digest and a character count at each
    boundary between its blocks, the boundaries a read may end at, those it writes.

    Attributes:
        digests: Per boundary, the digest of everything before it (cache markers ignored).
        chars: Per boundary, the prompt's characters before it (as the simulator counts).
        readable: Boundaries a cache hit may end at, ascending.
        written: Boundaries this request caches.
        explicit: Whether caching follows markers (then writes are reported as such).
    """

    digests: tuple[bytes, ...]
    chars: tuple[int, ...]
    readable: tuple[int, ...]
    written: tuple[int, ...]
    explicit: bool


@dataclass(frozen=True, slots=True)
class CacheHit:
    """What the cache did for one request, in tokens.

    Attributes:
        read: Prompt tokens read from the cache.
        written: Prompt tokens written to it (explicit caching only).
    """

    read: int = 0
    written: int = 0


_NO_HIT = CacheHit()


class PromptCache:
    """Prefixes per (provider, key, model), each alive ``ttl`` seconds after its last use.

    Args:
        ttl: Seconds a prefix stays cached after it was written or read (``0``: no cache).
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self, ttl: float = DEFAULT_CACHE_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not ttl >= 0 or ttl == float("inf"):
            raise ValueError(f"cache_ttl must be a finite number >= 0, got {ttl!r}")
        self.ttl = ttl
        self._clock = clock
        self._kept: dict[tuple[str, str, str], OrderedDict[bytes, float]] = {}

    def use(self, where: tuple[str, str, str], prefix: Prefix | None) -> CacheHit:
        """Look ``prefix`` up for ``where`` (provider, key, model), then cache what it writes."""
        if prefix is None or not self.ttl or not prefix.digests:
            return _NO_HIT
        now = self._clock()
        kept = self._kept.setdefault(where, OrderedDict())
        hit = -1
        for index in reversed(prefix.readable):
            expires = kept.get(prefix.digests[index])
            if expires is not None and expires > now:
                hit = index
                break
        read_chars = prefix.chars[hit] if hit >= 0 else 0
        until = now + self.ttl
        for index in (*prefix.written, *((hit,) if hit >= 0 else ())):
            digest = prefix.digests[index]
            kept[digest] = until
            kept.move_to_end(digest)
        while len(kept) > _MAX_ENTRIES:
            kept.popitem(last=False)
        read = read_chars // 4
        written = 0
        if prefix.explicit and prefix.written:
            written = max(0, prefix.chars[max(prefix.written)] // 4 - read)
        return CacheHit(read, written)

    def clear(self) -> None:
        """Forget every cached prefix."""
        self._kept.clear()


class _Builder:
    """Boundaries, added block by block."""

    def __init__(self, seed: Any, seed_chars: int = 0) -> None:
        self.digest = _digest(b"", seed)
        self.digests = [self.digest]
        self.chars = [seed_chars]
        self.breakpoints: list[int] = []

    def add(self, block: Any, chars: int) -> None:
        """A block whose boundary after it stands at ``chars`` characters in all."""
        self.digest = _digest(self.digest, block)
        self.digests.append(self.digest)
        self.chars.append(chars)

    def mark(self) -> None:
        """A breakpoint at the boundary after the last block added."""
        self.breakpoints.append(len(self.digests) - 1)

    def implicit(self, last_block_start: int) -> Prefix:
        """Every boundary written; reads end before the last message (at boundary
        ``last_block_start`` at the latest)."""
        count = len(self.digests)
        return Prefix(
            tuple(self.digests),
            tuple(self.chars),
            tuple(range(min(last_block_start, count - 1) + 1)),
            tuple(range(count)),
            explicit=False,
        )

    def explicit(self) -> Prefix | None:
        """Breakpoints written; reads end within :data:`LOOKBACK` blocks before one."""
        if not self.breakpoints:
            return None
        readable = sorted(
            {i for b in self.breakpoints for i in range(max(0, b - LOOKBACK + 1), b + 1)}
        )
        return Prefix(
            tuple(self.digests),
            tuple(self.chars),
            tuple(readable),
            tuple(sorted(set(self.breakpoints))),
            explicit=True,
        )


def prefix_of(
    wire: str, provider: str, body: Mapping[str, Any], items: Sequence[Any] | None = None
) -> Prefix | None:
    """The prefix of a request to ``wire`` (``items``: the Responses API's whole input,
    earlier responses' included); ``None`` when nothing of it can be cached."""
    if wire == "openai":
        return _chat(body)
    if wire == "responses":
        return _responses(body, items or ())
    if wire == "gemini":
        return _gemini(body)
    if wire == "anthropic":
        return _anthropic(body)
    if wire == "bedrock":
        return _converse(body)
    return None


def _chat(body: Mapping[str, Any]) -> Prefix | None:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    built = _Builder({"tools": body.get("tools"), "functions": body.get("functions")})
    total = 0
    for message in messages:
        if isinstance(message, dict):
            total += len(str(message.get("content", "")))
        built.add(message, total)
    return built.implicit(len(messages) - 1)


def _responses(body: Mapping[str, Any], items: Sequence[Any]) -> Prefix:
    from failover.testing.responses import context_chars

    instructions = body.get("instructions")
    total = len(instructions) if isinstance(instructions, str) else 0
    built = _Builder({"instructions": instructions, "tools": body.get("tools")}, total)
    for item in items:
        total += context_chars([item]) if isinstance(item, dict) else 0
        built.add(item, total)
    return built.implicit(len(items) - 1)


def _gemini(body: Mapping[str, Any]) -> Prefix | None:
    contents = body.get("contents")
    if not isinstance(contents, list):
        return None
    seed = {"system": body.get("systemInstruction"), "tools": body.get("tools")}
    built = _Builder(seed)
    total = 0
    for content in contents:
        if isinstance(content, dict):
            total += sum(
                len(str(part.get("text", "")))
                for part in content.get("parts", [])
                if isinstance(part, dict)
            )
        built.add(content, total)
    return built.implicit(len(contents) - 1)


def _anthropic(body: Mapping[str, Any]) -> Prefix | None:
    built = _Builder(None)
    for tool in body.get("tools") or []:
        built.add(tool, 0)
        if isinstance(tool, dict) and "cache_control" in tool:
            built.mark()
    system = body.get("system")
    total = 0
    if isinstance(system, list):
        for end in range(1, len(system) + 1):
            built.add(system[end - 1], len(str(system[:end])))
            if _marked(system[end - 1]):
                built.mark()
        total = len(str(system))
    elif system is not None:
        total = len(str(system))
        built.add(_text_block(system), total)
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        content = message.get("content", "")
        role = message.get("role")
        if isinstance(content, list):
            for end in range(1, len(content) + 1):
                built.add((role, content[end - 1]), total + len(str(content[:end])))
                if _marked(content[end - 1]):
                    built.mark()
        else:  # a string is one text block: the same prefix as that block
            built.add((role, _text_block(content)), total + len(str(content)))
        total += len(str(content))
    if isinstance(body.get("cache_control"), dict) and len(built.digests) > 1:
        built.mark()  # automatic caching: a breakpoint on the last block
    return built.explicit()


def _converse(body: Mapping[str, Any]) -> Prefix | None:
    built = _Builder(None)
    config = body.get("toolConfig")
    tools = config.get("tools") if isinstance(config, dict) else None
    for tool in tools if isinstance(tools, list) else []:
        _converse_block(built, tool, 0)
    total = 0
    for block in body.get("system") or []:
        if isinstance(block, dict):
            total += len(str(block.get("text", "")))
        _converse_block(built, block, total)
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        for block in message.get("content") or []:
            if isinstance(block, dict):
                total += len(str(block.get("text", "")))
                if "toolResult" in block:
                    total += len(json.dumps(block["toolResult"]))
            _converse_block(built, (message.get("role"), block), total)
    return built.explicit()


def _converse_block(built: _Builder, block: Any, chars: int) -> None:
    inner = block[1] if isinstance(block, tuple) else block
    if isinstance(inner, dict) and set(inner) == {"cachePoint"}:
        if len(built.digests) > 1:
            built.mark()
        return
    built.add(block, chars)


def _text_block(text: Any) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _marked(block: Any) -> bool:
    return isinstance(block, dict) and isinstance(block.get("cache_control"), dict)


def _digest(before: bytes, block: Any) -> bytes:
    text = json.dumps(_unmarked(block), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(before + text.encode(), digest_size=16).digest()


def _unmarked(value: Any) -> Any:
    """``value`` without its ``cache_control`` markers (they do not change the prefix)."""
    if isinstance(value, dict):
        return {k: _unmarked(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, (list, tuple)):
        return [_unmarked(v) for v in value]
    return value
