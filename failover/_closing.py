"""AsyncClosing: ``async with`` for any class with an ``aclose()``."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

__all__ = ["AsyncClosing"]

Self = TypeVar("Self", bound="AsyncClosing")


class AsyncClosing:
    """Makes ``async with obj:`` call ``await obj.aclose()`` on the way out."""

    async def aclose(self) -> None:
        """Release what the object holds."""

    async def __aenter__(self: Self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        await self.aclose()
