"""The GitLab issue's description: everything the issue asks for, from the alert or the latest
event; and user text (titles, culprits, tags, code lines) that can neither break the Markdown
nor forge the marker of another Sentry issue."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from test_alerts_tickets_support import alert

from bot.alerts.config import AlertsConfig
from bot.alerts.description import (
    event_frames,
    marker_for,
    md,
    mdcode,
    render_description,
    safe_url,
)
from bot.alerts.model import Frame

SETTINGS = AlertsConfig(tags=["server_name", "htcondor.cluster_id", "missing"],
                        comment_every=1800)
HOSTILE = [
    "<!-- sentry-issue:1 -->", "x --> <!-- sentry-issue:2 -->", "```\n# heading\n```",
    "| a | b |", "</details><details>", "@alice @channel", "[click](javascript:alert(1))",
    "<img src=x onerror=alert(1)>", "\u202eevil", "`` ` ```` `", "line\n\n## forged",
    "*bold* _it_ ~~s~~ #12 !3 ~label %milestone $1 &epic", "\\", "----",
]
ALLOWED_TAGS = re.compile(r"</?details>|</?summary>|<!-- sentry-issue:\w+ -->")


def render(**changes: object) -> str:
    item = alert("4242", **changes)
    return render_description(item, None, SETTINGS, f"condor analyze {item.condor_job}")


def test_everything_the_issue_asks_for() -> None:
    text = render(triggered_rule="errors in production")
    for expected in [
        "## TimeoutError\\: the task took too long",
        "**Sentry:** [GWCELERY\\-1Z](https://sentry.example.org/organizations/ligo/issues/4242/)",
        "| Level | error |", "| Environment | production |",
        "| Release | gwcelery@\u200d2\\.5\\.0 |", "| Events | 3 |",
        "| First seen | 2025-03-01 11:00:00 UTC |", "| Last seen | 2025-03-01 12:00:00 UTC |",
        "**Culprit:** `gwcelery.tasks.orchestrator in handle`",
        "| Alert rule | errors in production |",
        "**HTCondor job:** `123456.0`. To inspect it, ask shiftbot: `condor analyze 123456.0`",
        "<details>\n<summary>Top in-app frames of the latest event (innermost first)</summary>",
        'File "gwcelery/tasks/orchestrator.py", line 88, in handle\n'
        "    raise TimeoutError('too long')",
        "- server\\_name: `emfollow`\n- htcondor\\.cluster\\_id: `123456.0`",
        "at\nmost one every 30m 0s",
    ]:
        assert expected in text, expected
    assert "missing" not in text  # a selected tag the alert lacks is left out
    assert text.endswith("\n\n<!-- sentry-issue:4242 -->\n")


def test_without_job_rule_frames_or_link() -> None:
    item = alert("4243", tags=(), frames=(), triggered_rule=None, web_url="javascript:x()",
                 culprit=None)
    text = render_description(item, None, SETTINGS, None)
    for absent in ("HTCondor", "<details>", "Alert rule", "**Sentry:** [", "Culprit",
                   "**Tags:**"):
        assert absent not in text, absent
    assert "**Sentry:** GWCELERY\\-1Z" in text


def test_frames_from_the_latest_event_win_and_only_in_app_ones_innermost_first() -> None:
    frames = [{"filename": f"app/m{n}.py", "function": f"f{n}", "lineNo": n, "inApp": True,
               "context": [[n, f"call{n}()"]]} for n in range(12)]
    frames.insert(5, {"filename": "lib/x.py", "function": "lib", "lineNo": 1, "inApp": False})
    event = {"entries": [{"type": "message", "data": {}},
                         {"type": "exception", "data": {"values": [
                             {"stacktrace": {"frames": [{"filename": "chained.py"}]}},
                             {"stacktrace": {"frames": frames}}]}}],
             "tags": [{"key": "server_name", "value": "from-event"}],
             "release": {"version": "gwcelery@9"}}
    text = render_description(alert("1", release=None, tags=()), event, SETTINGS, None)
    shown = re.findall(r'File "app/m(\d+)\.py"', text)
    assert shown == [str(n) for n in range(11, 3, -1)]  # the 8 innermost, innermost first
    assert "lib/x.py" not in text and "chained.py" not in text and "call11()" in text
    assert "- server\\_name: `from-event`" in text and "| Release | gwcelery@\u200d9 |" in text


def test_frames_of_a_webhook_event_shape() -> None:
    [frame] = event_frames({"exception": {"values": [{"stacktrace": {"frames": [
        {"filename": "a.py", "function": "<module>", "lineno": 7, "in_app": False,
         "context_line": "raise X"}]}}]}})
    assert frame == Frame("a.py", "<module>", 7, False, "raise X")
    assert event_frames({"entries": "junk"}) == [] and event_frames(None) == []


def test_hostile_text_everywhere_changes_nothing_of_the_layout() -> None:
    for value in HOSTILE:
        text = render(title=value, culprit=value, short_id=value, environment=value,
                      release=value, triggered_rule=value,
                      tags=(("server_name", value), ("htcondor.cluster_id", value)),
                      frames=(Frame(value, value, 1, True, value),))
        check_layout(text, "4242")


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60), st.text(alphabet="`<>!-|@#\n sentry-issue:0123", max_size=60))
def test_any_text_keeps_the_layout(value: str, tricky: str) -> None:
    item = alert("77", title=value + tricky, culprit=tricky, environment=tricky or None,
                 tags=(("server_name", tricky or "x"),),
                 frames=(Frame(tricky or "f.py", value or "f", 2, True, tricky + value),))
    check_layout(render_description(item, None, SETTINGS, None), "77")


def check_layout(text: str, issue_id: str) -> None:
    assert text.count("<!--") == 1 and text.endswith(f"\n{marker_for('sentry:' + issue_id)}\n")
    lines = text.split("\n")
    opening = next(i for i, line in enumerate(lines) if re.fullmatch(r"`{3,}text", line))
    fence = lines[opening][:-4]
    closing = next(i for i in range(opening + 1, len(lines))
                   if re.fullmatch(r"`{3,}", lines[i].strip()))
    assert lines[closing] == fence and lines[closing + 2] == "</details>"
    outside = lines[:opening] + lines[closing + 1:]
    for line in outside:
        if line.startswith("| "):
            assert len(re.findall(r"(?<!\\)\|", line)) == 3, line  # one row, two cells
        assert not re.search(r"(?<![\w\\])@\w", strip_code_spans(line)), line
        rest = ALLOWED_TAGS.sub("", strip_code_spans(line))  # code spans show "<" as is
        assert "<" not in rest and ">" not in rest.replace("&gt;", ""), line
    assert not any(line.startswith(("#", "##")) for line in outside[1:]), "forged heading"


def strip_code_spans(line: str) -> str:
    return re.sub(r"(`+)(.*?)\1", "", line)


@given(st.text(max_size=40))
def test_a_code_span_cannot_be_closed_early(value: str) -> None:
    span = mdcode(value)
    if not span:
        assert value.strip("\ue000\ue001\ue002") == ""
        return
    fence = re.match(r"`+", span).group(0)  # type: ignore[union-attr]
    inner = span[len(fence):-len(fence)]
    assert span.endswith(fence)
    assert fence not in [run for run in re.findall(r"`+", inner)]


def test_inline_text_is_inert() -> None:
    assert md("@alice and @channel") == "@\u200dalice and @\u200dchannel"
    assert md("<!-- x -->") == "&lt;\\!\\-\\- x \\-\\-&gt;"
    assert md("[a](b)") == "\\[a\\]\\(b\\)"
    assert md("a\nb") == "a↵b"


def test_urls() -> None:
    assert safe_url("https://s.io/a b(c)") == "https://s.io/a%20b%28c%29"
    assert safe_url("javascript:alert(1)") is None and safe_url(None) is None


def test_an_override_template_cannot_forge_a_marker(tmp_path: Path) -> None:
    (tmp_path / "alerts_gitlab_issue.md.j2").write_text(
        "{{ alert.title }} <!-- sentry-issue:1 -->\n")
    text = render_description(alert("5"), None, SETTINGS, None, directories=[tmp_path])
    assert text.count("<!--") == 1 and text.endswith("<!-- sentry-issue:5 -->\n")
