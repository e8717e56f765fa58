"""What the stream fast-path tests share: a parser's answer to one input (its chunk, or the
error it raised), and JSON values of every kind to put where a field is expected."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from failover.errors import ProviderError


def answer(feed: Callable[..., Any], *given: Any) -> tuple[str, Any]:
    """``("chunk", what feed(*given) returned)`` or ``("error", (its type, its message))``."""
    try:
        return "chunk", feed(*given)
    except ProviderError as error:
        return "error", (type(error), str(error))


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=3) | st.dictionaries(
        st.text(max_size=6), children, max_size=3
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    _containers,
    max_leaves=6,
)
"""Any JSON value, small: scalars, and lists and objects of them."""
