"""Keeping API keys out of every string the library produces."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from operator import attrgetter
from typing import Any, NoReturn, Protocol, final
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = [
    "HTTP_LOGGERS",
    "KeyScrubber",
    "LogScrubber",
    "SecretKey",
    "key_fingerprint",
    "mask_key",
    "remember_secret",
    "scrub",
    "secret_reader",
    "watch_http_logs",
]

PIECE = 8
"""Any run of this many characters of a key counts as a leak of that key."""

# Shapes of provider keys that may be echoed back in error bodies even when the
# key itself is not known at the place the text is produced: each its start (written as
# here, or in any case) and the pattern of what follows it.
_CASED_SHAPES = (
    ("sk-", r"(?:ant-|proj-|or-v1-)?[A-Za-z0-9_\-]{8,}"),
    ("gsk_", r"[A-Za-z0-9]{8,}"),
    ("AIza", r"[0-9A-Za-z_\-]{20,}"),
    ("ya29.", r"[0-9A-Za-z_\-\.]{8,}"),  # Google OAuth access tokens (Vertex AI)
    ("ABSK", r"[A-Za-z0-9+/=]{16,}"),  # Amazon Bedrock API keys
    ("AKIA", r"[A-Z0-9]{16}"),  # AWS access key ids
    ("ASIA", r"[A-Z0-9]{16}"),
)
_ANY_CASE_SHAPES = (
    ("signature=", r"[0-9a-f]{16,}"),  # SigV4 signatures (header or query)
    ("x-amz-security-token", r"[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9+/=%]{8,}"),
    ("aws_secret_access_key", r"[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9+/=]{8,}"),
    ("aws_session_token", r"[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9+/=]{8,}"),
    ("bearer", r"\s+[A-Za-z0-9_\-\.=]{8,}"),
)
_CASED_STARTS = tuple(start for start, _ in _CASED_SHAPES)
_ANY_CASE_STARTS = tuple(start for start, _ in _ANY_CASE_SHAPES)
_KEY_SHAPES = re.compile(
    "("
    + "|".join(
        [re.escape(start) + rest for start, rest in _CASED_SHAPES]
        + [f"(?i:{re.escape(start)}){rest}" for start, rest in _ANY_CASE_SHAPES]
    )
    + ")"
)
_KEY_SHAPE_STARTS = re.compile(
    "|".join(map(re.escape, _CASED_STARTS))
    + "|(?i:"
    + "|".join(map(re.escape, _ANY_CASE_STARTS))
    + ")"
)
"""What a ``_KEY_SHAPES`` match starts with: as written, or in any case."""


def _aligned_quads(text: str) -> memoryview:
    """``text``'s UTF-8 bytes as integers of 4 bytes each, from its start."""
    data = text.encode("utf-8", "surrogatepass")
    return memoryview(data + bytes(-len(data) % 4)).cast("I")


_LOWERED_STARTS = tuple(start.lower() for start in (*_CASED_STARTS, *_ANY_CASE_STARTS))
"""The starts lowered, for ASCII text lowered: each looked for as a substring (a fast
search in C; a regex of them all tries each at every place, slower), they find every start
the regex does, and more."""


def _may_show_a_key_shape(text: str) -> bool:
    """Whether ``text`` holds what a ``_KEY_SHAPES`` match starts with (``sk-``, ``gsk_``,
    ``AIza``, ``bearer`` in any case): a fast no, before the slower regex, for most text.
    ASCII text (headers, most bodies) is first searched lowered (lowering ASCII is exact):
    a no there is a no; other text (where case folding goes beyond ASCII: the Kelvin sign
    is a ``k``), or a yes, is searched by ``_KEY_SHAPE_STARTS`` itself."""
    if text.isascii():
        lowered = text.lower()
        for start in _LOWERED_STARTS:
            if start in lowered:
                break
        else:
            return False
    return _KEY_SHAPE_STARTS.search(text) is not None


_REMEMBERED_LIMIT = 64
_CLEAN_TEXTS_KEPT = 1024  # texts a scrubber remembers as showing no key (then starts over)


class _Remembered:
    """The secrets :func:`remember_secret` was given, least recently used first, and one
    index of all their pieces kept by counts: adding or dropping one secret costs that
    secret's pieces only (each secret's are computed once), never a rebuild of all."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._secrets: OrderedDict[str, tuple[frozenset[str], frozenset[int]]] = OrderedDict()
        self._pieces: dict[str, int] = {}
        self._quads: dict[int, int] = {}
        self.version = 0  # moves on with each secret added (text once clean may not be)

    def __contains__(self, value: str) -> bool:
        return value in self._secrets

    def __len__(self) -> int:
        return len(self._secrets)

    def add(self, value: str) -> None:
        """Remember ``value`` as the most recently used; forget the least recently used
        beyond the limit."""
        with self._lock:
            if value in self._secrets:
                self._secrets.move_to_end(value)
                return
        scrubber = KeyScrubber((value,), remembered=False)  # outside the lock: the slow part
        compiled = (scrubber._pieces, scrubber._quads)
        with self._lock:
            if value in self._secrets:
                self._secrets.move_to_end(value)
                return
            self._secrets[value] = compiled
            _count(self._pieces, compiled[0], 1)
            _count(self._quads, compiled[1], 1)
            self.version += 1
            while len(self._secrets) > self.limit:
                _, (pieces, quads) = self._secrets.popitem(last=False)
                _count(self._pieces, pieces, -1)
                _count(self._quads, quads, -1)

    def cut(self, text: str) -> str:
        """``text`` with every piece of a remembered secret masked."""
        if not self._secrets:
            return text
        # Lookups only (no iteration over the dicts): safe while another thread adds.
        return _cut(text, self._pieces, self._quads.keys())


def _count(counts: dict[Any, int], items: Iterable[Any], step: int) -> None:
    for item in items:
        left = counts.get(item, 0) + step
        if left > 0:
            counts[item] = left
        else:
            counts.pop(item, None)


_remembered = _Remembered(_REMEMBERED_LIMIT)


def remember_secret(value: str) -> None:
    """Scrub ``value`` everywhere from now on, as a profile's key is scrubbed.

    For credentials that no profile holds: AWS secret keys and session tokens found in the
    AWS chain, Google access tokens refreshed from application default credentials, and a
    profile's key once rotated or removed (a request in flight may still meet it). The 64
    most recently used are kept: call it again each time a secret is used (cheap when it is
    known) so that a secret in use is never the one forgotten.
    """
    if value:
        _remembered.add(value)


def mask_key(key: str | SecretKey) -> str:
    """Return the masked form of ``key``: ``***`` followed by its last four characters."""
    if isinstance(key, SecretKey):
        key = key.get_secret_value()
    return "***" + key[-4:] if len(key) > 8 else "***"


def shown_url(url: str | None) -> str | None:
    """``url`` as it may be shown: no user or password, every query value ``***``."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"***@{host}" if "@" in parts.netloc else parts.netloc
    query = "&".join(
        f"{pair.partition('=')[0]}=***" if "=" in pair else "***"
        for pair in parts.query.split("&")
        if pair
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def scrub(text: str, *keys: str | SecretKey) -> str:
    """Remove every piece of ``keys`` and anything shaped like a key from ``text``."""
    if not keys:
        return _NO_KEYS(text)
    if len(keys) == 1 and isinstance(key := keys[0], SecretKey):
        return _scrubber_of(key)(text)
    return KeyScrubber(keys)(text)


def _scrubber_of(key: SecretKey) -> KeyScrubber:
    """The scrubber of a profile's ``key``, made once and kept as long as the key is (a
    failure scrubs its key's error text each time; making one is ~100x using it)."""
    scrubber = _scrubbers.get(key)
    if scrubber is None:
        scrubber = _scrubbers[key] = KeyScrubber((key,))
    return scrubber


class KeyScrubber:
    """Removes from text any run of 8 or more characters of the given keys.

    A provider may echo a whole key, half of one (``sk-abcd...****wxyz``), or an encoded
    one: every 8-character piece of each key, raw, URL-encoded, JSON-escaped and in base64
    (standard and URL-safe, padded or not, at any alignment: inside a Basic credential
    ``user:key``, say) is looked for, and each stretch of text they cover becomes ``***``.
    Anything shaped like a provider key (``sk-...``, ``AIza...``, ``Bearer ...``) is masked
    too. Shorter keys are replaced where they appear whole.
    """

    __slots__ = ("_clean", "_others", "_pieces", "_quads", "_short")

    def __init__(self, keys: Iterable[str | SecretKey], *, remembered: bool = True) -> None:
        self._others = remembered
        pieces: set[str] = set()
        short: set[str] = set()
        for key in keys:
            value = key.get_secret_value() if isinstance(key, SecretKey) else key
            if not value:
                continue
            for form in {value, quote(value, safe=""), json.dumps(value)[1:-1]}:
                if len(form) < PIECE:
                    short.add(form)
                pieces.update(_pieces(form))
            for form in _base64_forms(value.encode("utf-8", "surrogatepass")):
                pieces.update(_pieces(form))
        self._pieces = frozenset(pieces)
        self._quads = frozenset(
            int.from_bytes(raw[i : i + 4], sys.byteorder)
            for raw in (piece.encode("utf-8", "surrogatepass") for piece in pieces)
            for i in range(len(raw) - 3)
        )
        self._short = tuple(sorted(short, key=len, reverse=True))
        # texts found to show no key, and the remembered secrets' version they were found at
        self._clean: tuple[int, set[bytes]] = (-1, set())

    def __call__(self, text: str) -> str:
        """Return ``text`` with every piece of the keys and every key shape masked."""
        if self._pieces and len(text) >= PIECE:
            text = self._cut(text)
        for value in self._short:
            text = text.replace(value, "***")
        if self._others and len(text) >= PIECE:
            text = _remembered.cut(text)
        if not _may_show_a_key_shape(text):
            return text
        return _KEY_SHAPES.sub(lambda match: mask_key(match.group(0)), text)

    def changes_any(self, *texts: Iterable[bytes]) -> bool:
        """Whether scrubbing may change any of ``texts`` (bytes of ASCII text, each scrubbed
        alone, as a header's name and its value are): ``False`` when :meth:`__call__`
        leaves each as it is, ``True`` too for text that is not ASCII (to be decoded its
        own way). The texts found unchanged are remembered (up to ``_CLEAN_TEXTS_KEPT``,
        until another secret is remembered for scrubbing), so that one seen before costs a
        set lookup: a reply's headers mostly repeat from one reply to the next (its type,
        the organization, the limits), a few change (an id, a count). The new texts are
        scrubbed together, a line each, so ``True`` may also mean a key shape that spans
        two of them; the caller then scrubs each alone."""
        version = _remembered.version if self._others else 0
        found, clean = self._clean
        if found != version:
            clean = set()
            self._clean = (version, clean)
        new = set().union(*texts)
        new -= clean
        if not new:
            return False
        joined = b"\n".join(new)
        if not joined.isascii():
            return True
        block = joined.decode("ascii")
        if self(block) != block:
            return True
        if len(new) > _CLEAN_TEXTS_KEPT:  # more than it keeps: none remembered
            return False
        if len(clean) + len(new) > _CLEAN_TEXTS_KEPT:
            clean = set()
            self._clean = (version, clean)
        clean.update(new)
        return False

    def in_json(self, text: str) -> str:
        """Scrub ``text``; when it is JSON, scrub its decoded strings too and re-encode it
        (a key may be written in ``\\uXXXX`` escapes that no piece of the raw text shows)."""
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return self(text)
        try:
            return json.dumps(self._walk(value))
        except RecursionError:
            return self(text)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self(value)
        if isinstance(value, list):
            return [self._walk(item) for item in value]
        if isinstance(value, dict):
            return {self(str(k)): self._walk(v) for k, v in value.items()}
        return value

    def _cut(self, text: str) -> str:
        return _cut(text, self._pieces, self._quads)


def _cut(text: str, pieces: Container[str], quads: AbstractSet[int]) -> str:
    """``text`` with each stretch covered by ``pieces`` (8-character runs of keys) masked."""
    # A piece is 8 bytes or more of UTF-8, so it holds the 4 bytes at the first multiple
    # of 4 from where it starts: when no 4 bytes at a multiple of 4 are 4 bytes of a
    # piece, no piece is in the text (a test at C speed; most text has no key).
    aligned = _aligned_quads(text)
    if quads.isdisjoint(aligned):
        return text
    covered_until = -1
    runs: list[tuple[int, int]] = []
    for start in _starts(text, aligned, quads):
        if text[start : start + PIECE] in pieces:
            if runs and start <= covered_until:
                runs[-1] = (runs[-1][0], start + PIECE)
            else:
                runs.append((start, start + PIECE))
            covered_until = start + PIECE
    if not runs:
        return text
    out: list[str] = []
    position = 0
    for begin, end in runs:
        out.append(text[position:begin])
        out.append("***")
        position = end
    out.append(text[position:])
    return "".join(out)


def _starts(text: str, aligned: memoryview, quads: AbstractSet[int]) -> Sequence[int]:
    """Where in ``text`` a piece may start, in order, given its bytes' ``aligned`` quads and
    the ``quads`` of the pieces. In ASCII text (a character a byte) a piece holds one of its
    quads aligned, 0 to 3 characters from its start: only the starts up to 3 before such a
    quad are looked at, found in C (the few values the text shares with the pieces, then
    each one's places by ``bytes.find``). Other text: every start."""
    last = len(text) - PIECE
    if not text.isascii():
        return range(last + 1)
    if isinstance(quads, frozenset):
        shared: AbstractSet[int] = quads.intersection(aligned)
    else:  # the remembered secrets' (a view of a dict's keys)
        shared = {value for value in aligned if value in quads}
    data: bytes = aligned.obj  # type: ignore[assignment]  # the text's bytes, padded
    starts: set[int] = set()
    for value in shared:
        quad = value.to_bytes(4, sys.byteorder)
        at = data.find(quad)
        while at >= 0:
            if not at & 3:  # aligned: where the quad was seen
                starts.update(range(max(at - 3, 0), min(at, last) + 1))
            at = data.find(quad, at + 1)
    return sorted(starts)


def _pieces(form: str) -> Iterator[str]:
    return (form[i : i + PIECE] for i in range(len(form) - PIECE + 1))


_URL_SAFE = str.maketrans("+/", "-_")


def _base64_forms(raw: bytes) -> set[str]:
    """The base64 text of ``raw`` wherever it sits in longer encoded bytes: for each of the
    three alignments, the characters that encode ``raw``'s bits alone (plus the whole padded
    encoding), in the standard and the URL-safe alphabet."""
    forms = {base64.b64encode(raw).decode()}
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).decode()
        forms.add(encoded[-(-8 * offset // 6) : 8 * (offset + len(raw)) // 6])
    return forms | {form.translate(_URL_SAFE) for form in forms}


_NO_KEYS = KeyScrubber(())  # key shapes and remembered secrets alone
_scrubbers: weakref.WeakKeyDictionary[SecretKey, KeyScrubber] = weakref.WeakKeyDictionary()


class _HasScrubber(Protocol):
    def scrubber(self) -> KeyScrubber: ...


class LogScrubber(logging.Filter):
    """A logging filter that scrubs its sources' keys out of each record's message.

    HTTP libraries log what they send and receive before any code of ours sees it (httpcore
    each reply's headers at DEBUG, httpx each request's URL at INFO); this filter, on their
    loggers, rewrites a record that shows a key. Sources (anything with a ``scrubber()``) are
    held weakly: a source that is gone stops costing anything.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._sources: weakref.WeakSet[_HasScrubber] = weakref.WeakSet()

    def watch(self, source: _HasScrubber, loggers: Iterable[str]) -> None:
        """Scrub ``source``'s keys from the records of ``loggers`` from now on."""
        with self._lock:
            self._sources.add(source)
        for name in loggers:
            logger = logging.getLogger(name)
            if self not in logger.filters:
                logger.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record``'s message when it shows a key; never drop a record."""
        with self._lock:
            sources = list(self._sources)
        if not sources:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted: logging reports it itself
            return True
        scrubbed = message
        for source in sources:
            scrubbed = source.scrubber()(scrubbed)
        if scrubbed != message:
            record.msg, record.args = scrubbed, ()
        return True


HTTP_LOGGERS = (
    "httpx",
    "httpx2",
    *(
        f"{library}.{part}"
        for library in ("httpcore", "httpcore2")
        for part in ("connection", "http11", "http2", "proxy", "socks")
    ),
)
"""The loggers that print requests' URLs and replies' headers, before our code sees them."""

_HTTP_LOGS = LogScrubber()


def watch_http_logs(source: _HasScrubber) -> None:
    """Scrub ``source``'s keys (an engine's) from the HTTP libraries' log records.

    httpcore logs every reply's headers at DEBUG (an upstream may echo a key in one) and
    httpx each request's URL at INFO, before any code of ours sees them. ``source`` is held
    weakly: one that is gone stops costing anything.
    """
    _HTTP_LOGS.watch(source, HTTP_LOGGERS)


@final  # its key is read from its slot (secret_reader): no subclass may read it otherwise
class SecretKey:
    """An API key that never shows itself by accident.

    ``repr``, ``str`` and f-strings give the masked form (``***`` and the last four
    characters); ``copy``/``deepcopy`` (and so ``dataclasses.asdict``) keep the wrapper;
    pickling is refused. :meth:`get_secret_value` is the one way to the real key.

    Example:
        >>> key = SecretKey("sk-example-secret-1234")
        >>> f"{key}", key.get_secret_value()[:3]
        ('***1234', 'sk-')
    """

    __slots__ = ("__weakref__", "_value")
    _value: str

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a SecretKey wraps a str, got {type(value).__name__}")
        object.__setattr__(self, "_value", value)

    def get_secret_value(self) -> str:
        """Return the real key; send it only to the endpoint it belongs to."""
        return self._value

    @property
    def masked(self) -> str:
        """The key as it may be shown: ``***`` and its last four characters."""
        return mask_key(self._value)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("SecretKey is immutable")

    def __repr__(self) -> str:
        return f"SecretKey({self.masked!r})"

    def __str__(self) -> str:
        return self.masked

    def __format__(self, spec: str) -> str:
        return format(self.masked, spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SecretKey):
            other = other._value
        if not isinstance(other, str):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other.encode())

    def __hash__(self) -> int:
        return hash(("SecretKey", self._value))

    def __copy__(self) -> SecretKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> SecretKey:
        return self

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(
            "a SecretKey (an API key) cannot be pickled; pass keys to other processes "
            "through their own configuration (environment, secret store)"
        )

    def __getstate__(self) -> NoReturn:
        raise TypeError("a SecretKey (an API key) cannot be pickled")


def secret_reader(path: str) -> Callable[[Any], str]:
    """A reader of the real key of the :class:`SecretKey` at ``path`` (attribute names
    joined by dots) of what it is given, run in C with no Python frame:
    ``secret_reader("profile.api_key")(ctx)`` is
    ``ctx.profile.api_key.get_secret_value()`` (for a hot path that reads a key per call).
    """
    return attrgetter(f"{path}._value")


def key_fingerprint(key: str | SecretKey) -> str:
    """Return a short, stable fingerprint of ``key`` that reveals nothing of it.

    A keyed BLAKE2b digest of the whole key (never a prefix), as 16 hex characters: enough
    to tell two keys apart across processes, useless for recovering either.
    """
    value = key.get_secret_value() if isinstance(key, SecretKey) else key
    return hashlib.blake2b(value.encode(), digest_size=8, person=b"failover-key-fp").hexdigest()
