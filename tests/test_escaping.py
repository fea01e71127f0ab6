"""User text in replies: marked by templates (``|user``, ``|code``), escaped per dialect.

Each check reads the output the way its platform would: CommonMark code spans and Mattermost's
server-side mention parser for Mattermost, mrkdwn's ``&<>`` and backticks for Slack.
"""
# Look-alike characters below are meant: they are what the escaping produces or must survive.
# ruff: noqa: RUF001

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bot import smartquotes
from bot.adapters.console import format_reply
from bot.adapters.mattermost.actions import ActionSigner, ButtonFactory
from bot.adapters.mattermost.outbound import (
    TRUNCATED,
    Outbox,
    Outgoing,
    Where,
    confirm_question,
    fit,
)
from bot.adapters.slack import blocks
from bot.markup import SLACK_BACKTICK, ZWJ, code, is_marked, plain, user, visible
from bot.parser import ParseError, parse
from bot.registry import Registry
from bot.render import SHIPPED_TEMPLATES, Renderer, render_text
from bot.reply import Action, Choice, Level, Reply, Table

ATTACKS = [
    "`", "``", "```", "`" * 10, "a`b``c```d", "`x`", " x ", "\\`",
    "@channel", "@ALL", "@here", "@Here.", "x.@channel", "ping @alice", "@channel_",
    "<!here>", "<!channel>", "<!everyone>", "<@U123ABC>", "<!subteam^S1>",
    "![img](http://x/a.png)", "[link](http://x)", "<http://x|click>", "http://evil.example/x.png",
    "www.evil.example", "*bold*", "**bold**", "_it_", "~strike~", "# heading", "|a|b|\n|-|-|",
    "line1\nline2", "first\r\n# second", "<script>alert(1)</script>", "&amp; &lt;", "> quote",
    "1. list", "- item", "===", "$x^2$", "trailing\\", "a\u202eb", "tab\there", "\x1b[31mred",
]
DIALECTS = ("console", "slack", "mattermost")


# ------------------------------------------------------------------ reading it back


def code_span(text: str, start: int) -> tuple[str, int]:
    """The CommonMark code span opening at ``text[start]``: its content and where it ends."""
    opening = len(re.match(r"`+", text[start:]).group())  # type: ignore[union-attr]
    i = start + opening
    while True:
        j = text.find("`", i)
        assert j >= 0, f"code span at {start} is never closed: {text!r}"
        k = j
        while k < len(text) and text[k] == "`":
            k += 1
        if k - j == opening:
            content = text[start + opening:j]
            if content[:1] == " " and content[-1:] == " " and content.strip(" "):
                content = content[1:-1]
            return content, k
        i = k


def outside_code(message: str) -> str:
    """``message`` without fenced blocks and code spans (backslash escapes kept)."""
    lines, fence = [], None
    for line in message.split("\n"):
        match = re.fullmatch(r" {0,3}(`{3,})([^`]*)", line)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None:
            if re.fullmatch(r" {0,3}`+ *", line) and len(line.strip()) >= len(fence):
                fence = None
        else:
            lines.append(line)
    text, out, i = "\n".join(lines), [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(text[i:i + 2])
            i += 2
        elif text[i] == "`":
            try:
                _, i = code_span(text, i)
            except AssertionError:  # a lone run of backticks is text
                run = re.match(r"`+", text[i:]).group()  # type: ignore[union-attr]
                out.append(run)
                i += len(run)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def unescape(text: str) -> str:
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)


def mattermost_mass_mentions(message: str) -> set[str]:
    """What Mattermost's server would notify for: its mention parser over the text nodes."""
    found = set()
    for word in re.split(r"[^\w:.\-@]", unescape(outside_code(message))):
        if not word or (word[0] == ":" and word[-1] == ":"):
            continue
        word = word.lstrip(":.-_")
        candidates = [word, word.rstrip(".-:_"), *re.split(r"[.\-:]", word)]
        found |= {c.lower() for c in candidates if c.lower() in ("@all", "@channel", "@here")}
    return found


SPECIALS = set("\\`*_{}[]()#+-.!|<>&~:=$")


def unescaped_specials(region: str) -> list[str]:
    """Markdown punctuation in ``region`` that is not backslash-escaped."""
    bad, i = [], 0
    while i < len(region):
        if region[i] == "\\" and i + 1 < len(region) and region[i + 1] in SPECIALS:
            i += 2
            continue
        if region[i] in SPECIALS:
            bad.append(region[i])
        i += 1
    return bad


def slack_unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def assert_slack_inert(text: str) -> None:
    """No link, mention or broadcast can be written without a raw ``<``."""
    assert "<" not in text and ">" not in text, text
    assert not re.search(r"&(?!amp;|lt;|gt;)", text), text


@pytest.fixture(scope="module")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> Renderer:
    directory = tmp_path_factory.mktemp("templates")
    (directory / "probe.j2").write_text("U:A{{ x|user }}Z\nC:A {{ x|code }} Z\n")
    return Renderer([directory, SHIPPED_TEMPLATES])


def probe(renderer: Renderer, value: str, **extra: Any) -> Reply:
    return renderer.render_sync(Reply(template="probe.j2", data={"x": value}, **extra))


def line_of(text: str, prefix: str) -> str:
    return next(line for line in text.split("\n") if line.startswith(prefix))


# ------------------------------------------------------------------ the filters


def test_marks_cannot_be_forged_or_nested() -> None:
    forged = "\ue002@channel \ue001`x"
    assert plain(user(forged)) == "@channel `x" and plain(code(user("a"))) == "a"
    text = "A" + user(forged) + "B"
    assert render_text(Reply(text), "console") == "A@channel `xB"
    assert ZWJ + "channel" in render_text(Reply(text), "mattermost")
    assert code("") == "" and not is_marked(render_text(Reply(text), "slack"))


@pytest.mark.parametrize("value", ATTACKS)
def test_user_text_is_inert_in_every_dialect(renderer: Renderer, value: str) -> None:
    reply = probe(renderer, value, title="T", fields=[("Reason", value)],
                  table=Table(["job", "reason"], [["1.0", value]]))
    shown = visible(value)
    for dialect in DIALECTS:
        text = render_text(reply, dialect)
        assert not is_marked(text)
        user_line = line_of(text, "U:A")
        assert user_line.endswith("Z") and "\n" not in shown
        region = user_line[len("U:A"):-1]
        if dialect == "console":
            assert region == shown and line_of(text, "C:A") == f"C:A `{shown}` Z"
        elif dialect == "slack":
            assert_slack_inert(text)
            assert "`" not in region and slack_unescape(region) == shown.replace("`",
                                                                                 SLACK_BACKTICK)
        else:
            assert unescaped_specials(region) == [], region
            assert unescape(region).replace(ZWJ, "") == shown
            assert mattermost_mass_mentions(text) == set(), text
            assert "@" not in unescape(region).replace("@" + ZWJ, "")  # nobody is notified


@pytest.mark.parametrize("value", ATTACKS)
def test_code_spans_cannot_be_closed_early(renderer: Renderer, value: str) -> None:
    reply = probe(renderer, value)
    shown = visible(value)
    mattermost = line_of(render_text(reply, "mattermost"), "C:A ")
    content, end = code_span(mattermost, len("C:A "))
    assert content == shown and mattermost[end:] == " Z"
    slack = line_of(render_text(reply, "slack"), "C:A ")
    match = re.fullmatch(r"C:A `([^`]*)` Z", slack)
    assert match, slack
    assert slack_unescape(match.group(1)) == shown.replace("`", SLACK_BACKTICK)


@pytest.mark.parametrize("value", ["```", "`" * 10, "a\n```\nb", "x `````` y", "<!here> @all"])
def test_table_cells_cannot_close_the_block(value: str) -> None:
    reply = Reply(table=Table(["job", value], [["1.0", value], [value, "x"]]))
    mattermost = render_text(reply, "mattermost").split("\n")
    fence = mattermost[0]
    assert set(fence) == {"`"} and len(fence) > max([2, *(len(r) for r in re.findall("`+", value))])
    assert mattermost[-1] == fence and len(mattermost) == 2 + 2 + 2  # no row was added
    inner = mattermost[1:-1]
    assert not any(re.fullmatch(r" {0,3}`+ *", line) and len(line.strip()) >= len(fence)
                   for line in inner)
    slack = render_text(reply, "slack").split("\n")
    assert slack[0] == slack[-1] == "```" and "`" not in "\n".join(slack[1:-1])
    assert_slack_inert("\n".join(slack))


def test_fields_are_user_text_unless_marked() -> None:
    reply = Reply(fields=[("Reason", "*x* @channel"), ("Command", code("condor rm 1.0"))])
    assert render_text(reply, "mattermost") == \
        f"**Reason**: \\*x\\* @{ZWJ}channel\n**Command**: `condor rm 1.0`"
    assert render_text(reply, "slack") == "*Reason*: *x* @channel\n*Command*: `condor rm 1.0`"


def test_the_bot_never_mass_mentions_on_mattermost() -> None:
    text = render_text(Reply("@here look, @channel. @All: @allison @hereford"), "mattermost")
    assert mattermost_mass_mentions(text) == set()
    assert "@allison @hereford" in text  # people are still mentioned when the bot means to


def test_console_shows_what_hides() -> None:
    reply = Reply("note: " + user("a\u202eb\x1b[31m\nline"), fields=[("x", "\u200b")])
    assert format_reply(reply).split("\n") == ["note: a⟨U+202E⟩b⟨U+001B⟩[31m↵line",
                                               "x  ⟨U+200B⟩"]


# ------------------------------------------------------------------ the platforms' builders


def test_slack_block_kit_is_inert_and_verbatim(renderer: Renderer) -> None:
    for value in ATTACKS:
        reply = probe(renderer, value, fields=[("Reason", value)],
                      actions=[Action("Confirm", Choice.CONFIRM, "r1", style="danger",
                                      confirm_text=f"Run {code(value)} now?"),
                               Action("Cancel", Choice.CANCEL, "r1")])
        message = blocks.message(reply)
        sections = [b["text"] for b in message["blocks"] if b["type"] == "section"]
        assert all(s["type"] == "mrkdwn" and s["verbatim"] is True for s in sections)
        confirm = message["blocks"][-1]["elements"][0]["confirm"]["text"]
        assert confirm["verbatim"] is True
        for text in [message["text"], confirm["text"], *(s["text"] for s in sections)]:
            assert_slack_inert(text)
            assert not is_marked(text)
        if "`" not in value and "\n" not in value and "\t" not in value:
            assert re.fullmatch(r"Run `[^`]*` now\?", confirm["text"]), confirm["text"]


def test_mattermost_confirmation_shows_the_command_as_code() -> None:
    typed = "sample wipe 'x` @channel ![i](http://e/i.png)'"
    factory = ButtonFactory(ActionSigner(b"k"), "https://bot/mattermost/action", 300)
    attachment = factory.attachment(
        [Action("Confirm", Choice.CONFIRM, "r1", confirm_text=f"Run {code(typed)} now?")],
        Level.WARNING, root_id="", requester="u1")
    question = attachment["actions"][0]["integration"]["context"]["q"]
    message = confirm_question("r1", question)
    assert message.startswith("**Confirm request r1?**\nRun ``")
    content, end = code_span(message, message.index("``"))
    assert content == typed and message[end:] == " now?"
    assert mattermost_mass_mentions(message) == set() and not is_marked(message)


class _Rest:
    def __init__(self) -> None:
        self.posted: list[str] = []

    def pending_id(self) -> str:
        return "p1"

    async def create_post(self, channel: str, message: str, **_: Any) -> dict[str, Any]:
        self.posted.append(message)
        return {"id": "post1"}

    async def create_ephemeral(self, user: str, channel: str, message: str, **_: Any) -> None:
        self.posted.append(message)


async def test_mattermost_outbox_resolves_what_was_not_rendered() -> None:
    rest = _Rest()
    outbox = Outbox(rest)  # type: ignore[arg-type]
    where = Where("chan", "user")
    for kind in ("post", "ephemeral"):
        await outbox._perform("chan", Outgoing(kind, where, "… " + user("@channel ![x](y)")))
    assert rest.posted == [f"… @{ZWJ}channel \\!\\[x\\]\\(y\\)"] * 2
    await outbox.close()


def test_cutting_a_long_message_closes_a_long_fence() -> None:
    table = render_text(Reply(table=Table(["reason"], [["``` x"]] * 3000)), "mattermost")
    fence = table.split("\n")[0]
    assert fence == "````"
    cut = fit("intro\n" + table)
    body = cut[: -len(TRUNCATED)]
    assert body.endswith("\n" + fence) and body.count("\n" + fence + "\n") == 1
    assert fit("``` x\n" * 4000).endswith(TRUNCATED)  # an inline span is not a fence


# ------------------------------------------------------------------ shipped templates


def _condor_data(value: str) -> dict[str, dict[str, Any]]:
    outcome = type("Outcome", (), {"jobs": 1, "clusters": [7], "batch": value})()
    return {
        "condor_q.j2": {"schedd": "s", "pool": "p", "scope": None, "total": 1, "totals": "H 1",
                        "filters": [f"owner {value}", f"batch {value}"], "listed": 1,
                        "include_running": False, "status": None, "shown": 1, "omitted": 0},
        "condor_analyze.j2": {
            "job": "1.0", "pool": "p", "status": "H", "status_name": "held", "age": "1h",
            "owner": value, "batch": value, "universe": "vanilla", "worker": value,
            "hold_explained": "34 JobOutOfResources", "hold_reason": value, "num_holds": 1,
            "starts": 1, "last_rejection": value, "last_rejection_age": "1m",
            "requests": value, "requirements": value, "match": {"error": value},
            "verdict": value},
        "condor_action.j2": {"done": "Held", "count": 1, "targets": ["1.0"], "more": 0,
                             "batch": value, "schedd": "s", "pool": "p", "removing": False,
                             "not_found": [], "where": "", "skipped": 0, "unchanged": [],
                             "not_applicable": "", "denied": 0, "errors": 0},
        "condor_submit.j2": {"removed": 2, "batch": value, "waited": "1s", "name": value,
                             "pool": "p", "outcome": outcome, "clusters": "7"},
    }


@pytest.mark.parametrize("template", ["condor_q.j2", "condor_analyze.j2", "condor_action.j2",
                                      "condor_submit.j2"])
def test_condor_templates_mark_what_jobs_and_people_wrote(template: str) -> None:
    renderer = Renderer([SHIPPED_TEMPLATES])
    value = "@channel ![x](http://e/x.png) <!here> `"
    reply = renderer.render_sync(Reply(template=template, data=_condor_data(value)[template]))
    mattermost = render_text(reply, "mattermost")
    assert mattermost_mass_mentions(mattermost) == set()
    assert "![" not in unescape(outside_code(mattermost).replace("\\!", "").replace("\\[", ""))
    assert_slack_inert(render_text(reply, "slack"))
    assert value in render_text(reply, "console")


def test_the_pool_scope_is_a_code_span() -> None:
    """A ClassAd scope is full of '_' and '*', which markdown would turn into emphasis."""
    scope = 'JobBatchName == "gw_celery_*" && Owner =?= "*emfollow*"'
    data = {**_condor_data("x")["condor_q.j2"], "scope": scope}
    reply = Renderer([SHIPPED_TEMPLATES]).render_sync(Reply(template="condor_q.j2", data=data))
    assert render_text(reply, "mattermost").splitlines()[0] == f"s (pool p), scope: `{scope}`"
    assert render_text(reply, "slack").splitlines()[0] == \
        f"s (pool p), scope: `{scope.replace('&', '&amp;')}`"


# ------------------------------------------------------------------ fuzzed end to end


def test_typed_text_survives_parse_template_and_every_dialect(tmp_path: Path) -> None:
    """Whatever is typed: the parser refuses it, or each dialect's code span holds exactly the
    parsed text and ends where the template says; the normalised line parses the same again."""
    sys.path.insert(0, str(Path(__file__).parent))
    registry = Registry().load(["sample_handlers"])
    (tmp_path / "probe.j2").write_text("C:A {{ x|code }} Z")
    renderer = Renderer([tmp_path])
    pieces = st.one_of(
        st.sampled_from(["`", "``", "```", "`" * 7, " ", "@channel", "<!here>", "![i](http://e)",
                         "*", "_", "#", "|", "\\", "'", '"', "“", "”", "„", "‘", "’", "′",
                         "—", "–", "−", "-", "--", "x", "\u00a0", "&amp;"]),
        st.characters(blacklist_categories=("Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp")),
        st.characters(),  # now and then something the parser must refuse
    )

    @settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(pieces, min_size=1, max_size=12).map("".join))
    def check(value: str) -> None:
        try:
            parsed = parse(registry, "sample echo -- " + smartquotes.quote(value))
        except ParseError:
            assume(False)
            return
        (typed,) = parsed.args["words"]
        if not any(c.isspace() and c not in " \t\n\r" for c in value):
            assert typed == value
        assert parse(registry, parsed.text).args == parsed.args
        reply = renderer.render_sync(Reply(template="probe.j2", data={"x": typed}))
        mattermost = render_text(reply, "mattermost")
        content, end = code_span(mattermost, len("C:A "))
        assert content == typed and mattermost[end:] == " Z"
        slack = re.fullmatch(r"C:A `([^`]*)` Z", render_text(reply, "slack"))
        assert slack and slack_unescape(slack.group(1)) == typed.replace("`", SLACK_BACKTICK)
        assert render_text(reply, "console") == f"C:A `{typed}` Z"

    check()
