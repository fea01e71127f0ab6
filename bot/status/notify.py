"""Notice operations of status checks -> messages (``bot.notices``).

An operation (bot/status/states.py: :class:`NoticeOp`) is decided with the state, in the same
transaction, and kept in the state's ``pending`` list until it is performed here: a crash in
between performs it on the check's next result. Posts are idempotent by key; an update or
thread reply performed just before a crash may be performed a second time (at least once).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.messaging.mentions import UnknownMention, check_names
from bot.render import format_duration
from bot.reply import Action, Reply, link_url
from bot.reply import Level as ReplyLevel
from bot.status import states as st
from bot.status.model import CheckSpec, Level
from bot.timefmt import format_clock

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger(__name__)

REPLY_LEVEL = {Level.OK: ReplyLevel.OK, Level.WARNING: ReplyLevel.WARNING,
               Level.CRITICAL: ReplyLevel.ERROR, Level.UNKNOWN: ReplyLevel.WARNING}


def reply_level(level: Level | None) -> ReplyLevel:
    return ReplyLevel.INFO if level is None else REPLY_LEVEL[level]


def buttons(check: str, *, ack: bool, runbook: str | None = None) -> list[Action]:
    """Details (``status NAME``), Ack while the alert is live, and the runbook as a link
    button when it is a link one can be made of (:func:`runbook_link`)."""
    actions = [Action.run("Details", f"status {check}")]
    if ack:
        actions.append(Action.run("Ack", f"status ack {check}", style="primary"))
    if runbook_link(runbook):
        actions.append(Action.link("Runbook", str(runbook)))
    return actions


def runbook_link(runbook: str | None) -> bool:
    """Whether ``runbook`` can be a link button (an http(s) URL, ``bot.reply.link_url``);
    anything else (a wiki page name, a ``file:`` path) stays a line of the notice's text."""
    if not runbook:
        return False
    try:
        link_url(runbook)
    except ValueError:
        return False
    return True


def notice_reply(op: st.NoticeOp, spec: CheckSpec, zone: str, now: datetime, *,
                 reminders: bool = False) -> Reply:
    """The message an operation posts or changes a message into (``reminders``: repeats are
    on, so the alert says how to stop them)."""
    data: dict[str, Any] = {"reminders": reminders,
        "role": op.role, "check": spec.name, "level": op.level.name, "summary": op.summary,
        "description": spec.description, "runbook": spec.runbook,
        "since": format_clock(op.at, zone, now=now), "for": format_duration(
            (now - op.at).total_seconds()), "extra": op.extra,
    }
    level = reply_level(op.level)
    title = f"{spec.name} {op.level.name}"
    if op.role in (st.RECOVERY, st.RECOVERED):
        began = datetime.fromisoformat(op.extra["began"])
        data.update(was=Level(op.extra["was"]).name, began=format_clock(began, zone, now=now),
                    lasted=format_duration((op.at - began).total_seconds()))
        level = ReplyLevel.OK
        title = (f"{spec.name} OK" if op.role == st.RECOVERY
                 else f"{spec.name} recovered (was {data['was']})")
    elif op.role == st.SUPERSEDED:
        data["now"] = Level(op.extra.get("now", op.level)).name
        level = ReplyLevel.INFO
    elif op.role == st.ACKED:
        title += " (acknowledged)"
    live = op.role in (st.ALERT, st.REPEAT)
    # The recovery (a reply in the alert's thread) has no buttons; a superseded alert points
    # to the newer message, so not to the runbook either.
    actions = [] if op.role == st.RECOVERY else buttons(
        spec.name, ack=live, runbook=spec.runbook if op.role != st.SUPERSEDED else None)
    # The template prints the runbook as a line only where no button shows it.
    data["runbook_button"] = any(a.url for a in actions)
    return Reply(template="status_notice.j2", data=data, title=title, level=level,
                 actions=actions)


def mention_names(bot: Bot, names: Sequence[str]) -> list[str]:
    """The names the notices' mention code accepts; a name it refuses (a role no provider
    grants now, such as ``on-shift`` without the rota) is left out with a warning, so the
    alert still goes out."""
    accepted = []
    for name in names:
        try:
            accepted += check_names([name], bot.gate)
        except UnknownMention as exc:
            log.warning("status notice: %s; not mentioned", exc)
    return accepted


async def perform(bot: Bot, spec: CheckSpec, ops: Sequence[st.NoticeOp], *,
                  channel: str | None,
                  mention: Sequence[str], now: datetime, reminders: bool = False
                  ) -> list[st.NoticeOp]:
    """Perform ``ops`` in order; returns those done (or impossible: logged and dropped). The
    first one failing for a passing reason (the database) stops the rest: they stay pending."""
    done: list[st.NoticeOp] = []
    zone = bot.config.bot.timezone
    for op in ops:
        reply = notice_reply(op, spec, zone, now, reminders=reminders)
        try:
            if op.kind == st.POST:
                if channel is None:
                    raise ValueError("no channel configured (status.channel)")
                await bot.notices.post(channel, reply, key=op.key,
                                       mention=mention_names(bot, mention))
            elif op.kind == st.UPDATE:
                await bot.notices.update(op.key, reply)
            else:
                await bot.notices.thread(op.key, reply)
        except (KeyError, ValueError) as exc:
            # An unknown notice (its post was never made) or channel alias: retrying cannot
            # help. check-config reports unknown aliases before they get here.
            log.error("status %s: cannot %s notice %s: %s; dropped", spec.name, op.kind, op.key,
                      exc)
        except Exception:
            log.exception("status %s: %s of notice %s failed; retried with the next result",
                          spec.name, op.kind, op.key)
            break
        done.append(op)
    return done
