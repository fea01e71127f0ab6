"""The parser and help: typed slots, suggestions, usage, and a fuzzed router that never raises."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from conftest import console
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core import OutcomeStatus
from bot.parser import ParseError, parse
from bot.registry import Registry


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry().load(["handlers.builtin", "handlers.approvals", "handlers.audit",
                            "sample_handlers"])


def test_positionals_options_and_quotes(registry: Registry) -> None:
    parsed = parse(registry, 'sample echo "two words" more --times 3')
    assert parsed.spec.key == "sample.echo"
    assert parsed.args == {"words": ["two words", "more"], "times": 3}
    assert parse(registry, "sample echo x times=2").args["times"] == 2
    assert parse(registry, "sample echo x --times=4").args["times"] == 4
    assert parse(registry, "SAMPLE ECHO x").spec.key == "sample.echo"


def test_double_dash_ends_options(registry: Registry) -> None:
    assert parse(registry, "sample echo -- --times").args["words"] == ["--times"]


def test_durations_and_globs(registry: Registry) -> None:
    parsed = parse(registry, "audit --since 7d --command 'condor.*' --limit 5")
    assert parsed.args == {"since": 7 * 86400, "command": "condor.*", "limit": 5, "who": None}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("condr", "unknown command 'condr'"),
        ("sample ech x", "did you mean 'sample echo'"),
        ("sample echo x --tims 2", "did you mean '--times'"),
        ("sample echo x --times two", "expected a whole number"),
        ("sample echo x --times", "--times needs a value"),
        ("sample echo x --times 1 --times 2", "given twice"),
        ("sample wipe", "missing TARGET"),
        ("sample wipe a b", "unexpected argument 'b'"),
        ("sample wipe 'a;rm -rf /'", "not allowed"),
        ("audit --since forever", "expected a duration"),
        ("sample echo 'open", "no closing quotation"),
        ("sample", "needs a subcommand"),
        ("sample echo x --public --private", "exclude each other"),
        ("", "empty command"),
    ],
)
def test_bad_input_is_explained(registry: Registry, line: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(registry, line)
    assert message in info.value.message


def test_control_characters_rejected_in_text(registry: Registry) -> None:
    with pytest.raises(ParseError, match="control characters"):
        parse(registry, "sample echo 'a\x1b[31m'")


async def test_usage_is_shown_for_bad_arguments(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    outcome = await bot.handle(console("alice", "sample echo x --times two"))
    assert outcome.status == OutcomeStatus.USAGE
    assert "Usage: sample echo WORDS... [--times TIMES]" in outcome.reply.text


async def test_help_lists_only_what_the_caller_may_run(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    shifter = (await bot.handle(console("alice", "help"))).reply
    unknown = (await bot.handle(console("stranger", "help"))).reply
    assert shifter.table is not None and unknown.table is not None
    shifter_cmds = {row[0] for row in shifter.table.rows}
    unknown_cmds = {row[0] for row in unknown.table.rows}
    assert "sample wipe TARGET" in shifter_cmds and "sample echo WORDS... [options]" in shifter_cmds
    assert unknown_cmds == {"help [TOPIC...]", "whoami"}
    assert "not a configured person" in unknown.text


async def test_help_family_and_command(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    family = (await bot.handle(console("dave", "help sample", channel="ops"))).reply
    assert family.table is not None
    assert [r[0] for r in family.table.rows] == ["sample echo WORDS... [options]",
                                                 "sample table [options]"]
    assert "more you may not run here" in family.text
    command = (await bot.handle(console("alice", "help sample echo"))).reply
    assert "Examples:" in command.text and "sample echo hello" in command.text
    via_flag = await bot.handle(console("alice", "sample echo --help"))
    assert via_flag.status == OutcomeStatus.OK and "Usage" in dict(via_flag.reply.fields)
    unknown = (await bot.handle(console("alice", "help sampel"))).reply
    assert "did you mean 'sample'" in unknown.text.lower()


ADVERSARIAL = [
    "\x00", "'", '"', "\\", "--", "-", "--=", "=", "sample echo --times=-99999999999999",
    "sample echo " + "x" * 5000, "help " * 500, "sample\techo\tx", "sample echo $(reboot)",
    "approve ../../etc", "deny ' ' '", "why as as as", "who-can", "audit --limit 99999999",
    "sample echo \u202e\u2066", "sample echo 'a' \"b\" 'c", "🙂 🙃", "help --help --help",
]


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(["sample", "echo", "wipe", "help", "--times", "3", "'", '"', "--",
                              "=", "x=y", "--public", "-h", "audit", "--since", "7d", "approve",
                              "why", "as", "condor", "\\", "\n"]), max_size=8).map(" ".join),
))
def test_parser_raises_only_parse_errors(registry: Registry, line: str) -> None:
    with contextlib.suppress(ParseError):
        parse(registry, line)


async def test_router_never_raises_on_garbage(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    for line in ADVERSARIAL:
        for user in ("alice", "stranger"):
            outcome = await bot.handle(console(user, line))
            assert outcome.reply.text or outcome.reply.title or outcome.reply.table


def test_router_fuzzed_with_hypothesis(make_config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Thousands of random lines through the whole dispatcher (parse, gate, audit, render)."""
    import asyncio

    from bot.core import Bot

    loop = asyncio.new_event_loop()
    bot = loop.run_until_complete(Bot.create(make_config()))
    seen: dict[OutcomeStatus, int] = {}

    @settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(
        st.text(max_size=60),
        st.lists(st.sampled_from(["sample", "echo", "wipe", "table", "help", "--times", "-1",
                                  "'", '"', "--", "x=y", "--public", "why", "as", "alice",
                                  "approve", "abcdef", "audit", "--since", "1h", "whoami"]),
                 max_size=7).map(" ".join),
    ), st.sampled_from(["alice", "dave", "stranger"]))
    def run(line: str, user: str) -> None:
        outcome = loop.run_until_complete(bot.handle(console(user, line)))
        seen[outcome.status] = seen.get(outcome.status, 0) + 1

    try:
        run()
    finally:
        loop.run_until_complete(bot.close())
        loop.close()
    # The fuzzer must have reached more than the error path.
    assert seen.get(OutcomeStatus.USAGE, 0) > 0
    assert seen.get(OutcomeStatus.OK, 0) > 0


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(" \t\r\n\x0b\x0c\x1c\x1f\xa0ab-=.é\"'\\")),
               max_size=14))
def test_plain_lines_split_exactly_like_shlex(text: str) -> None:
    """tokenize() skips shlex for plain lines; whatever the line, the tokens (or the error)
    must be the ones shlex gives."""
    from bot.parser import _shlex_split, tokenize

    def outcome(split: Callable[[str], list[str]]) -> object:
        try:
            return split(text)
        except ParseError as exc:
            return ("error", exc.message)

    assert outcome(tokenize) == outcome(_shlex_split)
