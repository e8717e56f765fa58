"""What the subcommands share: argument types, the config file, the terminal."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from failover.config_file import LoadedConfig

__all__ = [
    "DEFAULT_CONFIG",
    "console",
    "count",
    "load",
    "port",
    "positive_float",
    "positive_int",
    "provider_key",
    "workers",
]

DEFAULT_CONFIG = "failover.toml"


def positive_int(text: str) -> int:
    """A whole number above 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """A positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive, finite number, got {text}")
    return value


def workers(text: str) -> int:
    """A number of worker processes, 0..64."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= 64:
        raise argparse.ArgumentTypeError(f"must be within 0..64, got {value}")
    return value


def port(text: str) -> int:
    """A TCP port, 0..65535 (0: any free one)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is within 0..65535, got {value}")
    return value


def provider_key(text: str) -> tuple[str, str]:
    """``PROVIDER=KEY``; a malformed one is refused without echoing the key."""
    provider, equals, key = text.partition("=")
    if not equals or not provider or not key:
        raise argparse.ArgumentTypeError(f"expected PROVIDER=KEY, got {provider!r}=…")
    return provider, key


def load(path: str | None) -> LoadedConfig:
    """The config file at ``path`` (default ``./failover.toml``), checked."""
    from failover.config_file import load_config

    return load_config(path or DEFAULT_CONFIG)


def console() -> Any:
    """A rich console; wide when the output is a file or a pipe, so tables stay whole."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def count(value: int | None) -> str:
    """A count with thousands separators, ``-`` when unknown."""
    return "-" if value is None else f"{value:,}"
