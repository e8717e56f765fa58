"""What the cloud adapters' credential refreshes share (AWS's chain, google-auth).

A refresh is synchronous I/O run in a worker thread. The lock that keeps it to one per
profile is a ``threading.Lock`` taken *in that thread*: adapters are shared by every client
of a process, whatever its event loop (a sync client runs its own), and an ``anyio.Lock``
belongs to one loop. The thread is abandoned when its caller is cancelled (the caller
returns at once); it finishes under the lock and its result is kept for the next caller.
"""

from __future__ import annotations

import socket
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from failover.errors import AuthenticationError, ProviderConnectionError, ProviderError

if TYPE_CHECKING:
    from failover.profiles import AuthProfile

__all__ = ["ProfileLocks", "in_thread", "refresh_failure"]

T = TypeVar("T")

_TRANSIENT_NAMES = ("Timeout", "Connection", "TransportError", "MetadataRetrieval")
_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
    }
)


class ProfileLocks:
    """One ``threading.Lock`` per profile (held weakly by the profile)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: weakref.WeakKeyDictionary[AuthProfile, threading.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self, profile: AuthProfile) -> threading.Lock:
        """``profile``'s lock."""
        with self._guard:
            lock = self._locks.get(profile)
            if lock is None:
                lock = self._locks[profile] = threading.Lock()
            return lock


async def in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run ``function(*args)`` in a worker thread; a cancellation returns at once (the
    thread finishes on its own)."""
    import anyio.to_thread

    return await anyio.to_thread.run_sync(function, *args, abandon_on_cancel=True)


def _transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a network failure or a timeout: the token
    endpoint or metadata server did not answer, rather than refusing the credentials."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ConnectionError, TimeoutError, socket.gaierror)):
            return True  # not any OSError: a missing credentials file is not transient
        if getattr(current, "retryable", False) is True:  # google-auth's RefreshError
            return True
        name = type(current).__name__
        if any(part in name for part in _TRANSIENT_NAMES):
            return True
        response = getattr(current, "response", None)  # botocore's ClientError
        if isinstance(response, dict):
            error = response.get("Error") or {}
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            if error.get("Code") in _TRANSIENT_CODES or (isinstance(status, int) and status >= 500):
                return True
        current = current.__cause__ or current.__context__
    return False


def refresh_failure(exc: Exception, what: str) -> ProviderError:
    """The error a failed credential lookup or refresh stands for.

    A timeout or connection failure (of the token endpoint, the metadata server, STS) is a
    :class:`ProviderConnectionError`: the request goes sideways and the profile is tried
    again later. Anything else (refused or missing credentials) is an
    :class:`AuthenticationError`, which disables the profile.
    """
    if _transient(exc):
        return ProviderConnectionError(
            f"{what}: the credentials endpoint could not be reached ({type(exc).__name__})"
        )
    return AuthenticationError(f"{what} ({type(exc).__name__})")
