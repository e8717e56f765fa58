"""The auth profile record: one key for one provider, its health, and its checks."""

from __future__ import annotations

from enum import Enum
from typing import Literal

__all__ = ["FailureKind", "ProfileStatus"]

FailureKind = Literal["error", "rate_limit", "quota", "auth"]
"""How a failure affects a key: transient error, rate limit, out of quota, or dead key."""


class ProfileStatus(str, Enum):
    """The health of an auth profile."""

    AVAILABLE = "available"
    RATE_LIMITED = "rate_limited"
    COOLING_DOWN = "cooling_down"
    DISABLED = "disabled"
