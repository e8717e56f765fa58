"""Keeping API keys out of every string the library produces."""

from __future__ import annotations

import re

# Shapes of provider keys that may be echoed back in error bodies even when the
# key itself is not known at the place the text is produced.
_KEY_SHAPES = re.compile(
    r"(sk-(?:ant-|proj-|or-v1-)?[A-Za-z0-9_\-]{8,}"
    r"|gsk_[A-Za-z0-9]{8,}"
    r"|AIza[0-9A-Za-z_\-]{20,}"
    r"|(?i:bearer)\s+[A-Za-z0-9_\-\.=]{8,})"
)


def mask_key(key: str) -> str:
    """Return the masked form of ``key``: ``***`` followed by its last four characters."""
    return "***" + key[-4:] if len(key) > 8 else "***"


def scrub(text: str, *keys: str) -> str:
    """Replace every occurrence of ``keys`` and of anything shaped like a key in ``text``."""
    for key in keys:
        if key:
            text = text.replace(key, mask_key(key))
    return _KEY_SHAPES.sub(lambda match: mask_key(match.group(0)), text)
