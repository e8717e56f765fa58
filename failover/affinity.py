"""Session affinity: where a conversation was last served, and how to name a conversation.

Prompt caches live per key (organisation) and per deployment, so a conversation that
moves between keys pays full price for its prefix again on every move. The planner keeps
a conversation on the :class:`Pin` (model and key) that served it last while that pin
stays healthy, and pins it again on the next server after a failure.

Pins live in a pin store: :class:`SessionPins` in this process (the default), or
``failover.store.redis_sessions.RedisSessionPins`` shared through Redis by every worker
of an application. Both speak the :class:`PinStore` protocol::

    pins = SessionPins(ttl=300.0)
    await pins.set("conv-7", Pin("anthropic/claude-sonnet-4-5", "anthropic-2"))
    await pins.get("conv-7")  # Pin(model='anthropic/claude-sonnet-4-5', profile='anthropic-2')

A pin lasts ``ttl`` seconds after its last use (``set`` or ``touch``), 300 by default:
Anthropic's default prompt cache lives 5 minutes from its last hit and OpenAI's 5 to 10
minutes of inactivity, so a pin older than that would keep a conversation on a key whose
cache is already cold, for nothing.

Callers that pass no session get one from :func:`prefix_session` (a conversation's
messages) or :func:`session_of_payload` (an SDK's request body): a digest of the
conversation's stable prefix, the same on every turn of one conversation.

This module imports no Redis and nothing heavy.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from failover.errors import ConfigError

__all__ = [
    "AFFINITIES",
    "DEFAULT_SESSION_TTL",
    "Pin",
    "PinStore",
    "SessionPins",
    "check_affinity",
    "check_session",
    "prefix_session",
    "session_of_payload",
]

DEFAULT_SESSION_TTL = 300.0
"""Seconds a pin lasts after its last use: the providers' default prompt-cache lifetime."""

_SYSTEM_ROLES = frozenset({"system", "developer"})
_IGNORED_KEYS = frozenset({"cache_control", "cachePoint", "cache_point"})


@dataclass(frozen=True, slots=True)
class Pin:
    """Where a conversation was last served.

    Attributes:
        model: The chain step's ``"provider/model"`` id.
        profile: The name of the key's auth profile.
    """

    model: str
    profile: str

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model or "\n" in self.model:
            raise ValueError(f"Pin model must be a non-empty one-line string, got {self.model!r}")
        if not isinstance(self.profile, str) or not self.profile:
            raise ValueError(f"Pin profile must be a non-empty string, got {self.profile!r}")


@runtime_checkable
class PinStore(Protocol):
    """Where session pins are kept: :class:`SessionPins` or ``RedisSessionPins``."""

    ttl: float

    async def get(self, session: str) -> Pin | None:
        """The session's pin; ``None`` when unknown or unused for ``ttl`` seconds."""
        ...

    async def set(self, session: str, pin: Pin) -> Pin | None:
        """Pin the session (its ttl starts again); return the pin it replaces, if live."""
        ...

    async def touch(self, session: str) -> None:
        """The session was served on its pin again: its ttl starts again."""
        ...

    async def forget(self, session: str) -> None:
        """Drop the session's pin."""
        ...


def check_ttl(owner: str, ttl: Any) -> float:
    """``ttl`` as seconds, or :class:`ConfigError` when it is not a finite number > 0."""
    number = isinstance(ttl, int | float) and not isinstance(ttl, bool)
    if not number or not math.isfinite(ttl) or ttl <= 0:
        raise ConfigError(f"{owner} ttl must be a finite number of seconds > 0, got {ttl!r}")
    return float(ttl)


AFFINITIES = ("session", "prefix", "off")
"""What ``affinity=`` takes (see ``ResilientClient``)."""


def check_affinity(affinity: Any) -> str:
    """``affinity`` when it is one of :data:`AFFINITIES`, else :class:`ConfigError`."""
    if affinity not in AFFINITIES:
        raise ConfigError(f"affinity must be 'session', 'prefix' or 'off', got {affinity!r}")
    return str(affinity)


def check_session(session: Any) -> str:
    """``session`` when it is a str, else :class:`TypeError` (a pin store's key)."""
    if not isinstance(session, str):
        raise TypeError(f"a session must be a string, got {type(session).__name__}")
    return session


class SessionPins:
    """Session pins kept in this process: thread-safe, bounded, expiring.

    A pin expires ``ttl`` seconds after its last use (:meth:`set` or :meth:`touch`;
    :meth:`get` reads without refreshing). When more than ``max_sessions`` sessions are
    pinned, the least recently used is dropped.

    Args:
        ttl: Seconds a pin lasts after its last use.
        max_sessions: How many sessions are kept at most.
        clock: Monotonic seconds (injectable for tests).

    Raises:
        ConfigError: ``ttl`` is not a finite number > 0, or ``max_sessions`` < 1.
    """

    def __init__(
        self,
        ttl: float = DEFAULT_SESSION_TTL,
        *,
        max_sessions: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = check_ttl("SessionPins", ttl)
        if isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1:
            raise ConfigError(f"SessionPins max_sessions must be an int >= 1, got {max_sessions!r}")
        self.max_sessions = max_sessions
        self._clock = clock
        self._lock = threading.Lock()
        # session -> (pin, time of its last use); ordered by last use, oldest first.
        self._pins: OrderedDict[str, tuple[Pin, float]] = OrderedDict()

    def __repr__(self) -> str:
        return f"SessionPins(ttl={self.ttl!r}, max_sessions={self.max_sessions!r})"

    def __len__(self) -> int:
        """How many sessions are held (expired ones not yet swept included)."""
        return len(self._pins)

    def _live(self, session: str, now: float) -> Pin | None:
        held = self._pins.get(session)
        if held is None:
            return None
        if now - held[1] >= self.ttl:
            del self._pins[session]
            return None
        return held[0]

    def _sweep(self, now: float) -> None:
        """Drop expired pins from the oldest end, then the least recently used over the bound."""
        pins = self._pins
        while pins:
            _, used = next(iter(pins.values()))
            if now - used < self.ttl:
                break
            pins.popitem(last=False)
        while len(pins) > self.max_sessions:
            pins.popitem(last=False)

    async def get(self, session: str) -> Pin | None:
        """The session's pin; ``None`` when unknown or unused for ``ttl`` seconds."""
        session = check_session(session)
        with self._lock:
            return self._live(session, self._clock())

    async def set(self, session: str, pin: Pin) -> Pin | None:
        """Pin the session (its ttl starts again); return the live pin it replaces, if any."""
        session = check_session(session)
        if not isinstance(pin, Pin):
            raise TypeError(f"a pin must be a Pin, got {type(pin).__name__}")
        with self._lock:
            now = self._clock()
            previous = self._live(session, now)
            self._pins[session] = (pin, now)
            self._pins.move_to_end(session)
            self._sweep(now)
            return previous

    async def touch(self, session: str) -> None:
        """The session was served on its pin again: its ttl starts again (no-op if unknown)."""
        session = check_session(session)
        with self._lock:
            now = self._clock()
            pin = self._live(session, now)
            if pin is not None:
                self._pins[session] = (pin, now)
                self._pins.move_to_end(session)

    async def forget(self, session: str) -> None:
        """Drop the session's pin."""
        session = check_session(session)
        with self._lock:
            self._pins.pop(session, None)


# -- naming a conversation by its stable prefix ---------------------------------------------


def _clean(value: Any) -> Any:
    """A content part or tool without its prompt-cache marker (markers move between turns;
    every wire puts them on the part or tool itself, so nothing deeper is looked at)."""
    if isinstance(value, Mapping) and not _IGNORED_KEYS.isdisjoint(value):
        return {k: v for k, v in value.items() if k not in _IGNORED_KEYS}
    return value


def _is_text(part: Mapping[str, Any]) -> bool:
    """A text part: ``{"type": "text" or "input_text", "text"}``, or Gemini's ``{"text"}``."""
    if not isinstance(part.get("text"), str):
        return False
    return part.get("type") in ("text", "input_text") or set(part) - _IGNORED_KEYS == {"text"}


def _parts(content: Any) -> list[Any]:
    """A message's content as a list of parts; a string and one text part are the same,
    and so are the text parts of every wire (``text``, ``input_text``, Gemini's ``{text}``)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if isinstance(content, Mapping):
        content = [content]
    if not isinstance(content, list | tuple):
        return [_clean(content)]
    parts: list[Any] = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, Mapping) and _is_text(part):
            parts.append(part["text"])
        elif cleaned := _clean(part):
            parts.append(cleaned)  # a part that was only a marker is no part
    return parts


def _tools(tools: Any) -> Any:
    if not tools:
        return None
    if isinstance(tools, list | tuple):
        return [_clean(tool) for tool in tools]
    return _clean(tools)


def _digest(system: list[Any], tools: Any, first: list[Any] | None) -> str:
    canonical = json.dumps(
        {"system": system, "tools": _tools(tools), "first": first},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=repr,
    )
    return hashlib.blake2b(canonical.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _prefix(messages: Sequence[Any], system: Any) -> tuple[list[Any], list[Any] | None]:
    """The system parts and the first user turn's parts of OpenAI-shaped messages."""
    system_parts = _parts(system)
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        role = message.get("role")
        if role in _SYSTEM_ROLES:
            system_parts.extend(_parts(message.get("content")))
        elif role == "user":
            return system_parts, _parts(message.get("content"))
    return system_parts, None


def prefix_session(
    messages: Sequence[Mapping[str, Any]], *, tools: Any = None, system: Any = None
) -> str:
    """A stable id for a conversation: a digest of its stable prefix.

    The prefix is ``system`` (a string or content blocks), the system and developer
    messages before the first user message, the ``tools``, and the first user message's
    content (text, images by URL or data, any other part as given). Prompt-cache markers
    (``cache_control``) are ignored, and a string content equals one text part holding it.
    Turns after the first user message do not change it, so every turn of one
    conversation maps to one session; conversations that differ in that prefix map to
    different sessions (two that share it share a prompt cache too).

    Args:
        messages: The conversation, OpenAI Chat-shaped (``role`` and ``content``).
        tools: The request's tools, if any.
        system: A system prompt given apart from the messages (Anthropic's ``system``).

    Returns:
        32 hex digits (BLAKE2b); the conversation's text cannot be read back from it.
    """
    system_parts, first = _prefix(messages, system)
    return _digest(system_parts, tools, first)


def _responses_prefix(body: Mapping[str, Any]) -> tuple[list[Any], list[Any] | None] | None:
    """OpenAI Responses: ``instructions`` and ``input`` (a string or items)."""
    if body.get("previous_response_id") or body.get("conversation"):
        return None  # the prefix is on OpenAI's servers, not in the body
    given, instructions = body.get("input"), body.get("instructions")
    if isinstance(given, str):
        return _parts(instructions), [given]
    if not isinstance(given, list):
        return None
    messages = [
        item
        for item in given
        if isinstance(item, Mapping) and item.get("type", "message") == "message"
    ]
    return _prefix(messages, instructions) if messages else None


def _gemini_prefix(body: Mapping[str, Any]) -> tuple[list[Any], list[Any] | None] | None:
    """Gemini: ``systemInstruction`` and ``contents`` (roles user and model)."""
    contents = body.get("contents")
    if not isinstance(contents, list):
        return None
    instruction = body.get("systemInstruction", body.get("system_instruction"))
    if isinstance(instruction, Mapping):
        instruction = instruction.get("parts")
    messages = [
        {"role": c.get("role") or "user", "content": c.get("parts")}
        for c in contents
        if isinstance(c, Mapping)
    ]
    return _prefix(messages, instruction)


def session_of_payload(payload: Mapping[str, Any]) -> str | None:
    """The :func:`prefix_session` of an SDK's request body, on any wire.

    Reads OpenAI Chat (``messages``), OpenAI Responses (``instructions`` and ``input``),
    Anthropic Messages (``system`` and ``messages``) and Gemini (``systemInstruction``
    and ``contents``), with their ``tools``. Every turn of one conversation on one wire
    maps to one session; the same conversation on two wires may not.

    Returns:
        The session, or ``None`` when the body holds no conversation (no system prompt and
        no user turn), or a Responses body continuing one stored on OpenAI's servers
        (``previous_response_id``, ``conversation``).
    """
    if not isinstance(payload, Mapping):
        return None
    found: tuple[list[Any], list[Any] | None] | None
    messages = payload.get("messages")
    if isinstance(messages, list):
        found = _prefix(messages, payload.get("system"))
    elif "contents" in payload:
        found = _gemini_prefix(payload)
    elif "input" in payload:
        found = _responses_prefix(payload)
    else:
        found = None
    if found is None:
        return None
    system, first = found
    if not system and first is None:
        return None
    return _digest(system, payload.get("tools"), first)
