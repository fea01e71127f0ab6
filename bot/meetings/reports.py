"""Meeting-report threads: opening one, recording the replies, closing and rendering.

The report thread is a notice posted with ``owner="meetings"`` when the meeting ends; the
``meeting_reports`` row is written first, so a reply can never arrive for a thread whose report
is unknown. Replies (``@on_thread_reply("meetings")``) are parsed by ``markers.parse`` and
stored as items; ``report close`` in the thread (or ``#endmeeting``, the ``report close``
command, or the auto-close occurrence) closes it once, renders ``meeting_report.j2`` and posts
it into the thread on every platform (``notices.thread``), and updates the opening post.

Items are editable (``#edit N TEXT`` in a thread, ``report edit ITEM TEXT`` anywhere) by their
author or anyone holding ``report.close`` (who may close, and so decide, the report): ``edit``
below is that rule, shared by both.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot import clock
from bot.markup import resolve, user
from bot.meetings import markers, store, views
from bot.meetings.config import MeetingsConfig, SeriesSpec
from bot.meetings.model import Meeting
from bot.reply import Level, Reply

if TYPE_CHECKING:
    from bot.core import Bot
    from bot.hooks import ThreadContext
    from bot.identity import Caller

log = logging.getLogger(__name__)

CLOSE_PERMISSION = "report.close"
AUTO = "auto-close"


class EditRefused(Exception):
    """An edit that cannot be made: the message says why (``denied``: the caller may not)."""

    def __init__(self, message: str, *, denied: bool = False) -> None:
        super().__init__(message)
        self.denied = denied


def settings_of(bot: Bot) -> MeetingsConfig:
    section = bot.config.feature_sections.get("meetings")
    return section if isinstance(section, MeetingsConfig) else MeetingsConfig()


def spec_of(bot: Bot, series: str) -> SeriesSpec:
    spec = settings_of(bot).get(series)
    if spec is None:
        raise LookupError(f"meeting series '{series}' is no longer configured")
    return spec


async def open_thread(bot: Bot, spec: SeriesSpec, meeting: Meeting, notice_key: str,
                      mention: list[str]) -> store.Report:
    """The report row, then its thread's opening post (both idempotent by key)."""
    report = await bot.database.run(
        lambda conn: store.open_report(
            conn, series=spec.name, meeting_key=meeting.meeting_key, title=meeting.title,
            starts_at=meeting.start, ends_at=meeting.end, notice_key=notice_key,
            now=clock.utcnow()))
    await bot.notices.post(spec.channel, views.thread_reply(spec, report), key=notice_key,
                           mention=mention, owner="meetings")
    return report


# ------------------------------------------------------------------------ replies


def _person_of(bot: Bot, token: str | None) -> str | None:
    """An action's owner token as a person's key when it names one (``<@U123>`` on Slack,
    ``@bob`` or ``bob``), else the name as typed without its ``@``."""
    if token is None:
        return None
    if token.startswith("<@"):
        user_id = token[2:-1].partition("|")[0]
        person = bot.directory.lookup("slack", user_id)
        return person.key if person is not None else token[2:-1].partition("|")[2] or user_id
    name = token.lstrip("@")
    if name in bot.directory.people:
        return name
    for key, person in bot.config.people.items():
        if person.mattermost_username and person.mattermost_username.lower() == name.lower():
            return key
    found = bot.directory.lookup("mattermost", name)
    return found.key if found is not None else name


async def on_reply(ctx: ThreadContext) -> Reply | None:
    """A reply in a report thread (see the module's docstring); the answer, if any, goes to
    that thread on the platform it was typed on."""
    bot = ctx.bot
    report = await bot.database.run(lambda c: store.report_by(c, notice_key=ctx.notice_key))
    if report is None:
        return None
    author = ctx.caller.label
    marker = markers.parse(ctx.text, frozenset(bot.directory.people))
    now = clock.utcnow()
    if marker.kind == "error":
        return Reply.error(marker.text, title="Marker not recorded")
    if marker.kind == "close":
        return await _close_from_thread(ctx, report)
    if marker.kind == "undo":
        gone = await bot.database.run(store.undo, report.id, author, now)
        if gone is None:
            return Reply(text=f"Nothing of {user(author)} to undo in this report.")
        return Reply(text=f"Removed {gone.kind} #{gone.id}: {user(gone.text)}")
    if marker.kind == "done":
        assert marker.item_id is not None
        done = await bot.database.run(store.mark_done, marker.item_id, author, now)
        if done is None:
            return Reply.error(f"No action item #{marker.item_id}.", title="No such item")
        return Reply(text=f"Action item #{done.id} is done: {user(done.text)}")
    if marker.kind == "edit":
        assert marker.item_id is not None
        try:
            return Reply(text=await edit(bot, ctx.caller, marker.item_id, marker.text))
        except EditRefused as exc:
            if exc.denied:
                return Reply(text=str(exc), level=Level.DENIED)
            return Reply.error(str(exc), title="Not edited")
    owner = _person_of(bot, marker.owner) if marker.kind == "action" else None
    item = await bot.database.run(store.add_item, report.id, marker.kind, author, marker.text,
                                  now, owner)
    if item.kind == "action":
        note = "" if report.state == store.OPEN else " (the report is closed: `report show` " \
                                                     "includes it)"
        return Reply(text=f"Action item #{item.id} for {user(owner or 'nobody yet')}: "
                          f"{user(item.text)}{note}")
    return None


async def edit(bot: Bot, caller: Caller, item_id: int, typed: str) -> str:
    """Item ``item_id`` says ``typed`` now (an action item's leading ``@person`` is its new
    owner; ``@person`` alone keeps its text). Allowed to the item's author and to holders of
    ``report.close``. The answer to show; :class:`EditRefused` when it is not made."""
    found = await bot.database.run(store.item, item_id)
    if found is None or found.kind not in store.MARKER_KINDS:
        raise EditRefused(f"No item #{item_id} to edit (`report show MEETING` lists the "
                          "numbers; plain discussion and undone items have none).")
    if found.author != caller.label:
        decision = bot.gate.check(caller, CLOSE_PERMISSION)
        if not decision.allowed:
            raise EditRefused(f"Not allowed: item #{item_id} is {user(found.author)}'s; only "
                              f"they or someone with {CLOSE_PERMISSION} may edit it.",
                              denied=True)
    token, text = markers.split_owner(typed) if found.kind == "action" else (None, typed)
    owner = _person_of(bot, token)
    edited = await bot.database.run(lambda c: store.edit_item(
        c, item_id, caller.label, clock.utcnow(), text=text or None, owner=owner))
    if edited is None:  # undone meanwhile
        raise EditRefused(f"No item #{item_id} to edit (it was just removed).")
    log.info("meetings: item %d edited by %s", item_id, caller.label)
    if edited.kind == "action":
        return (f"Action item #{edited.id} is now for {user(edited.owner or 'nobody yet')}: "
                f"{user(edited.text)}")
    return f"Item #{edited.id} ({edited.kind}) is now: {user(edited.text)}"


async def _close_from_thread(ctx: ThreadContext, report: store.Report) -> Reply | None:
    decision = ctx.bot.gate.check(ctx.caller, CLOSE_PERMISSION)
    if not decision.allowed:
        return Reply(text=f"Not allowed: closing a report needs {CLOSE_PERMISSION} "
                          f"({user(decision.reason)}).", level=Level.DENIED)
    closed = await close(ctx.bot, report, ctx.caller.label)
    if not closed:
        return Reply(text=f"This report was closed already by {user(report.closed_by or '?')}.")
    return None


# ------------------------------------------------------------------------ closing, showing


async def render(bot: Bot, report: store.Report) -> Reply:
    """The report as it stands now (closed or not)."""
    spec = spec_of(bot, report.series)

    def read(conn: Any) -> tuple[list[store.Item], dict[int, store.Ticket]]:
        return store.items_of(conn, report.id), store.tickets_of(conn, report.id)

    items, tickets = await bot.database.run(read)
    return views.report_reply(spec, report, items, tickets)


async def close(bot: Bot, report: store.Report, by: str) -> bool:
    """Close ``report`` once: render, keep the text, post it in the thread, update the
    opening post. False when it was closed already."""
    if not await bot.database.run(store.close_report, report.id, by, clock.utcnow()):
        return False
    closed = await bot.database.run(lambda c: store.report_by(c, report_id=report.id))
    assert closed is not None
    reply = await render(bot, closed)
    text = resolve(bot.renderer.render_sync(reply).text, "console")
    await bot.database.run(store.set_rendered, closed.id, text)
    await bot.notices.thread(closed.notice_key, reply)
    try:
        await bot.notices.update(closed.notice_key,
                                 views.thread_reply(spec_of(bot, closed.series), closed,
                                                    closed=True))
    except KeyError:  # the opening notice is gone (pruned): the report is posted anyway
        log.info("meetings: the opening post of %s is gone; not updated", closed.notice_key)
    log.info("meetings: report %s closed by %s", closed.meeting_key, by)
    return True


async def auto_close(bot: Bot, notice_key: str) -> None:
    report = await bot.database.run(lambda c: store.report_by(c, notice_key=notice_key))
    if report is not None and report.state == store.OPEN:
        await close(bot, report, AUTO)
