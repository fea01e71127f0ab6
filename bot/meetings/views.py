"""The meetings' messages: the reminder, the report thread's opening post, the rendered report
(templates ``config/templates/meeting_*.j2``); and the report's data, grouped as people read
minutes: topics with their items, the decisions, the action items by person."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.meetings import store
from bot.meetings.config import SeriesSpec
from bot.meetings.model import dst_warning, zone_times
from bot.reply import Action, Reply, Visibility, link_url
from bot.timefmt import format_local, local_time

LABELS = {"info": "INFO", "idea": "IDEA", "link": "LINK", "decision": "DECISION",
          "action": "ACTION"}
MAX_BUTTONS = 3


def in_words(offset: timedelta) -> str:
    """``10 minutes``, ``1 day``, ``2 hours``, ``90 seconds``."""
    seconds = int(offset.total_seconds())
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def team_zones(spec: SeriesSpec, default: Sequence[str]) -> list[str]:
    """The series' zone first, then the team's (each once)."""
    zones = [spec.zone, *(spec.team_zones if spec.team_zones is not None else default)]
    return list(dict.fromkeys(zones))


def _buttons(links: Sequence[tuple[str, str]]) -> tuple[list[Action], list[dict[str, str]]]:
    """Links that can be buttons, and the rest as text lines."""
    actions, lines = [], []
    for label, url in links:
        try:
            if len(actions) >= MAX_BUTTONS:
                raise ValueError("enough buttons")
            actions.append(Action.link(label, link_url(url)))
        except ValueError:
            lines.append({"label": label, "url": url})
    return actions, lines


def open_item_rows(open_items: Sequence[tuple[store.Item, store.Ticket | None]]
                   ) -> list[dict[str, Any]]:
    return [{"id": item.id, "owner": item.owner or "unassigned", "text": item.text,
             "ticket": ticket.url if ticket else ""} for item, ticket in open_items]


def reminder_reply(spec: SeriesSpec, *, title: str, start: datetime, end: datetime,
                   offset: timedelta, zones: list[str],
                   links: Sequence[tuple[str, str]],
                   open_items: Sequence[tuple[store.Item, store.Ticket | None]],
                   more_items: int = 0) -> Reply:
    actions, link_lines = _buttons([*links, *((link.label, link.url) for link in spec.links)])
    data = {"title": title, "in": in_words(offset), "when": format_local(start, spec.zone),
            "minutes": int((end - start).total_seconds() // 60), "zones": zone_times(start, zones),
            "dst_warning": dst_warning(start, zones) or "", "links": link_lines,
            "agenda": spec.agenda or "", "open_items": open_item_rows(open_items),
            "more_items": more_items}
    return Reply(title=f"{title} in {in_words(offset)}", template="meeting_reminder.j2",
                 data=data, actions=actions, visibility=Visibility.CHANNEL)


def thread_reply(spec: SeriesSpec, report: store.Report, *, closed: bool = False) -> Reply:
    """The report thread's opening post (and, once closed, what it is updated to)."""
    data = {"title": report.title, "when": format_local(report.starts_at, spec.zone),
            "series": spec.name, "date": meeting_date(spec, report.starts_at),
            "closed": closed, "closed_by": report.closed_by or ""}
    return Reply(title=f"Meeting report: {report.title}", template="meeting_report_thread.j2",
                 data=data, visibility=Visibility.CHANNEL)


def meeting_date(spec: SeriesSpec, starts_at: datetime) -> str:
    """The meeting's local date, as ``report show NAME DATE`` takes it."""
    return f"{local_time(starts_at, spec.zone):%Y-%m-%d}"


def report_data(spec: SeriesSpec, report: store.Report, items: Sequence[store.Item],
                tickets: dict[int, store.Ticket]) -> dict[str, Any]:
    """The report's content for ``meeting_report.j2`` (see the module's docstring)."""
    topics: list[dict[str, Any]] = []
    loose: list[dict[str, Any]] = []  # items said before the first #topic
    by_topic: dict[int, list[dict[str, Any]]] = {}
    decisions, discussion = [], 0
    actions: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if item.kind == "discussion":
            discussion += 1
            continue
        if item.kind == "topic":
            entries: list[dict[str, Any]] = []
            by_topic[item.id] = entries
            topics.append({"text": item.text, "entries": entries})
            continue
        ticket = tickets.get(item.id)
        row = {"id": item.id, "kind": item.kind, "label": LABELS.get(item.kind, item.kind),
               "text": item.text, "author": item.author, "owner": item.owner or "",
               "done": item.done_at is not None, "ticket": ticket.url if ticket else ""}
        (by_topic.get(item.topic_id or -1, loose)).append(row)
        if item.kind == "decision":
            decisions.append(row)
        elif item.kind == "action":
            actions.setdefault(item.owner or "unassigned", []).append(row)
    if loose:
        topics.insert(0, {"text": "", "entries": loose})
    people = sorted(actions, key=lambda name: (name == "unassigned", name.lower()))
    return {"title": report.title, "series": spec.name, "when": format_local(
        report.starts_at, spec.zone), "date": meeting_date(spec, report.starts_at),
        "state": report.state, "closed_by": report.closed_by or "", "topics": topics,
        "decisions": decisions, "actions": [{"owner": p, "entries": actions[p]} for p in people],
        "discussion": discussion}


def report_reply(spec: SeriesSpec, report: store.Report, items: Sequence[store.Item],
                 tickets: dict[int, store.Ticket]) -> Reply:
    data = report_data(spec, report, items, tickets)
    actions = []
    untracked = [i for i in items if i.kind == "action" and i.id not in tickets
                 and i.done_at is None]
    if spec.report.tracker is not None and untracked:
        actions.append(Action.run("Open tickets", f"report ticket {spec.name} {data['date']}",
                                  style="primary"))
    return Reply(title=f"Meeting report: {report.title}", template="meeting_report.j2",
                 data=data, actions=actions, visibility=Visibility.CHANNEL)
