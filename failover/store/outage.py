"""Outage: what a part shared through Redis does while Redis cannot be reached.

Budgets, token windows and session pins each fall back to this process's own bookkeeping
when Redis is unreachable, so that an outage costs no request. :func:`unreachable` tells
such an error apart from one that must reach the caller; an :class:`Outage` warns once
when it begins and once when Redis answers again.
"""

from __future__ import annotations

import logging

__all__ = ["Outage", "unreachable"]


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` says Redis cannot serve now: redis-py's connection and timeout
    errors (a server still loading, out of connections, refusing the login included), a
    replica that became read-only after a failover, or the socket's own."""
    if isinstance(error, OSError):
        return True
    if not type(error).__module__.startswith("redis"):
        return False
    from redis import exceptions

    return isinstance(
        error, (exceptions.ConnectionError, exceptions.TimeoutError, exceptions.ReadOnlyError)
    )


class Outage:
    """Whether Redis is down for one shared part, with one warning per outage.

    Args:
        logger: Where the warnings go.
        part: What is shared (e.g. ``"failover budgets"``), to start each warning.
        meanwhile: What happens during an outage (e.g. ``"spend is counted in this
            process"``), for the first warning.
    """

    __slots__ = ("down", "logger", "meanwhile", "part")

    def __init__(self, logger: logging.Logger, part: str, meanwhile: str) -> None:
        self.logger = logger
        self.part = part
        self.meanwhile = meanwhile
        self.down = False
        """Whether Redis was unreachable at the last try."""

    def failed(self, error: BaseException) -> bool:
        """Note ``error``: ``True`` when it says Redis is unreachable (warned once per
        outage), ``False`` when it is another error, for the caller to raise."""
        if not unreachable(error):
            return False
        if not self.down:
            self.down = True
            self.logger.warning(
                "%s: Redis is unreachable (%s); %s until it answers again",
                self.part,
                type(error).__name__,
                self.meanwhile,
            )
        return True

    def answered(self) -> bool:
        """Note that Redis answered; ``True`` when that ends an outage (warned)."""
        if not self.down:
            return False
        self.down = False
        self.logger.warning("%s: Redis is back and answers again", self.part)
        return True
