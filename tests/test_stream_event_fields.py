"""A stream's events are read for their name and data as httpx-sse's properties give them."""

from __future__ import annotations

from typing import Any

import pytest
from httpx_sse import ServerSentEvent

from failover import chat_calls


def test_an_event_s_fields_are_what_its_properties_give() -> None:
    read = chat_calls._event_fields()
    for event in (ServerSentEvent(data="x"), ServerSentEvent("ping", "a\nb"), ServerSentEvent()):
        assert read(event) == (event.event, event.data)


def test_an_httpx_sse_that_keeps_its_fields_elsewhere_is_read_through_its_properties(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Elsewhere:
        def __init__(self, event: str = "", data: str = "") -> None:
            self.fields = (event or "message", data)

        @property
        def event(self) -> str:
            return self.fields[0]

        @property
        def data(self) -> str:
            return self.fields[1]

    class Stale(Elsewhere):
        _event = "stale"
        _data = "stale"

    for kind in (Elsewhere, Stale):
        monkeypatch.setattr(chat_calls, "ServerSentEvent", kind)
        read: Any = chat_calls._event_fields()
        assert read(kind("done", "[DONE]")) == ("done", "[DONE]")
