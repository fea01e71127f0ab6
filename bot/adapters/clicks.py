"""Messages a button click is updating itself, so a decision listener leaves them alone.

A click on a request's button makes the adapter update that message from the click's own
answer (``response_url`` / the integration response). The core also tells every decision
listener (:meth:`bot.core.Bot.add_decision_listener`), which would update the same message a
second time, possibly with other words ("Confirmed by ...; now waits for approval"). The click
path marks the message *before* it asks the core to decide; a listener that finds the mark waits
until the click knows whether it updated the message, and skips it if so.
"""

from __future__ import annotations

import asyncio

LINGER = 60.0  # a finished click's mark stays this long (the listener runs in the background)


class ClickedMessages:
    def __init__(self, linger: float = LINGER) -> None:
        self.linger = linger
        self._marks: dict[str, list[asyncio.Future[bool]]] = {}

    def begin(self, message_id: str) -> asyncio.Future[bool]:
        """A click on ``message_id`` is being decided; resolve with :meth:`end`."""
        mark: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._marks.setdefault(message_id, []).append(mark)
        return mark

    def end(self, message_id: str, mark: asyncio.Future[bool], updated: bool) -> None:
        """The click is decided; ``updated``: it updates the message itself."""
        if not mark.done():
            mark.set_result(updated)
        if updated:
            asyncio.get_running_loop().call_later(self.linger, self._drop, message_id, mark)
        else:
            self._drop(message_id, mark)

    async def updated_by_click(self, message_id: str) -> bool:
        """Whether a click updates (or updated, recently) ``message_id`` itself."""
        marks = list(self._marks.get(message_id, ()))
        if not marks:
            return False
        results = await asyncio.gather(*(asyncio.shield(m) for m in marks))
        return any(results)

    def _drop(self, message_id: str, mark: asyncio.Future[bool]) -> None:
        marks = self._marks.get(message_id)
        if marks is not None and mark in marks:
            marks.remove(mark)
            if not marks:
                del self._marks[message_id]
