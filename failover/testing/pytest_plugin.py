"""A pytest plugin with a ready :class:`~failover.testing.ScriptedProvider` fixture.

Enable it in your ``conftest.py``::

    pytest_plugins = ["failover.testing.pytest_plugin"]

then ask for ``scripted_provider`` in a test::

    async def test_rotates_on_429(scripted_provider):
        scripted_provider.script.rate_limit(retry_after=2).then_ok("hello")
        client = ResilientClient(chain, profiles, sender=scripted_provider.sender())
        ...
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from failover import policy
from failover.testing.scripted import ScriptedProvider

__all__ = ["scripted_provider"]


@pytest.fixture
def scripted_provider() -> Iterator[ScriptedProvider]:
    """A fresh ScriptedProvider; backoff sleeps are zeroed (``set_testing``) for the test."""
    before = policy._testing
    policy.set_testing(True)
    try:
        yield ScriptedProvider()
    finally:
        policy.set_testing(before)
