"""The parser and help: typed slots, suggestions, usage, and a fuzzed router that never raises."""
# Curly quotes and dashes below are meant: they are what phones type.
# ruff: noqa: RUF001

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
    assert parsed.args == {"since": 7 * 86400, "command": "condor.*", "limit": 5, "who": None,
                           "before": None}


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
    with pytest.raises(ParseError, match=r"words: control character U\+001B \(ESCAPE\)"):
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


# ----------------------------------------------------------- what a person actually types
# (look-alike characters below are the point of these tests)

REFUSED = [  # (character, its class in the message, its name when it has one)
    *((chr(c), "invisible character", None) for c in range(0x202A, 0x202F)),  # LRE..RLO
    *((chr(c), "invisible character", None) for c in range(0x2066, 0x206A)),  # LRI..PDI
    ("\u200e", "invisible character", "LEFT-TO-RIGHT MARK"),
    ("\u200f", "invisible character", "RIGHT-TO-LEFT MARK"),
    ("\u061c", "invisible character", "ARABIC LETTER MARK"),
    ("\u200b", "invisible character", "ZERO WIDTH SPACE"),
    ("\u200c", "invisible character", "ZERO WIDTH NON-JOINER"),
    ("\u200d", "invisible character", "ZERO WIDTH JOINER"),
    ("\u2060", "invisible character", "WORD JOINER"),
    ("\ufeff", "invisible character", "ZERO WIDTH NO-BREAK SPACE"),
    ("\u00ad", "invisible character", "SOFT HYPHEN"),
    ("\U000e0041", "invisible character", "TAG LATIN CAPITAL LETTER A"),
    ("\u3164", "invisible character", "HANGUL FILLER"),
    ("\u2028", "line separator", "LINE SEPARATOR"),
    ("\u2029", "paragraph separator", "PARAGRAPH SEPARATOR"),
    ("\x85", "control character", "NEXT LINE"),
    ("\x1b", "control character", "ESCAPE"),
    ("\ue000", "private-use character", None),
    ("\U000f0000", "private-use character", None),
    ("\u0378", "unassigned code point", None),
    ("\ud800", "surrogate code point", None),
]


@pytest.mark.parametrize(("char", "kind", "name"), REFUSED)
def test_invisible_characters_are_refused_by_name(registry: Registry, char: str, kind: str,
                                                  name: str | None) -> None:
    point = f"U+{ord(char):04X}"
    described = f"{point} ({name})" if name else point
    places = [  # (line, the slot the message names)
        (f"sample echo 'a{char}b'", "words"),  # free text
        (f"sample wipe x{char}y", "target"),  # a word
        (f"sample echo x --times 1{char}", "times"),  # a number
        (f"sample echo x --times=1{char}", "times"),
        (f"sample ech{char}o x", "command line"),  # the command itself
        (f"sample echo x --tim{char}es 1", "command line"),  # an option's name
        (f"sample echo x --public{char}", "command line"),
    ]
    for line, where in places:
        with pytest.raises(ParseError) as info:
            parse(registry, line)
        message = info.value.message
        assert message.startswith(f"{where}: {kind} {point}"), (line, message)
        assert described in message and message.endswith(("is not allowed", "joiner)"))
        assert char not in message  # named, never shown


def test_refused_characters_keep_the_usage(registry: Registry) -> None:
    with pytest.raises(ParseError) as info:
        parse(registry, "sample echo x --tims\u200b 2")  # would be "unknown option" otherwise
    assert info.value.spec is not None and info.value.spec.key == "sample.echo"
    assert info.value.message.startswith("command line: invisible character U+200B")


def test_emoji_sequences_are_refused_with_a_reason(registry: Registry) -> None:
    with pytest.raises(ParseError, match="emoji joined with it"):
        parse(registry, "sample echo 'on call 👩\u200d💻'")
    # Single emoji, new ones included (unassigned in Python 3.11's tables), are fine.
    assert parse(registry, "sample echo 'ok 👍 \U0001fae8'").args["words"] == ["ok 👍 \U0001fae8"]


SMART_DOUBLE = ['“two words”', '”two words”', '„two words“', '‟two words”', '″two words″',
                '“two words"', '"two words”']
SMART_SINGLE = ["‘two words’", "’two words’", "‚two words‘", "‛two words’", "′two words′",
                "‘two words'", "'two words’"]


@pytest.mark.parametrize("quoted", SMART_DOUBLE + SMART_SINGLE)
def test_smart_quotes_group_words(registry: Registry, quoted: str) -> None:
    parsed = parse(registry, f"sample echo {quoted} more")
    assert parsed.args["words"] == ["two words", "more"]
    assert parse(registry, parsed.text).args == parsed.args  # what an approval runs again


@pytest.mark.parametrize("dash", ["—", "–", "−", "——", "−−", "–-"])
def test_a_leading_dash_is_an_option(registry: Registry, dash: str) -> None:
    assert parse(registry, f"sample echo x {dash}times 3").args == {"words": ["x"], "times": 3}
    assert parse(registry, f"sample echo x {dash}times=4").args["times"] == 4
    assert parse(registry, f"audit {dash}since 2h").args["since"] == 7200


def test_a_phone_typed_hold_line() -> None:
    from bot.commands import Arg, CommandSpec, Opt

    async def nothing(ctx: object) -> None: ...

    spec = CommandSpec("condor", "hold", "Hold", nothing, "condor.hold",  # type: ignore[arg-type]
                       args=(Arg("jobs", kind="jobid", many=True),),
                       options=(Opt("reason", kind="text"),))
    registry = Registry()
    registry.add(spec)
    parsed = parse(registry, "condor hold 1.20 —reason “node drained”")
    assert parsed.args == {"jobs": ["1.20"], "reason": "node drained"}
    assert parsed.text == "condor hold 1.20 --reason 'node drained'"


def test_dashes_and_quotes_inside_text_stay_text(registry: Registry) -> None:
    cases = {
        'sample echo "a – b" “—all of it”': ["a – b", "—all of it"],
        "sample echo 'x —y' -- —z": ["x —y", "—z"],  # after --, nothing is an option
        "sample echo node’s it’s": ["node’s", "it’s"],  # apostrophes, not quotes
        "sample echo “it’s ‘fine’”": ["it’s ‘fine’"],
        "sample echo ‘say “hi”’": ["say “hi”"],
        "sample echo x=—y a—b —": ["x=—y", "a—b", "—"],
        "sample echo \\“x\\”": ["“x”"],
    }
    for line, words in cases.items():
        parsed = parse(registry, line)
        assert parsed.args["words"] == words, line
        assert parse(registry, parsed.text).args == parsed.args, parsed.text


def test_unicode_spaces_are_spaces_and_minus_is_minus(registry: Registry) -> None:
    assert parse(registry, "sample echo x\u00a0--times\u202f2").args == {"words": ["x"], "times": 2}
    with pytest.raises(ParseError, match="times: must be at least 0, got -5"):
        parse(registry, "sample echo x --times −5")


@pytest.mark.parametrize("opening", ["“", "„", "‟", "″", "‘", "‚", "‛", "′", "”", "’"])
def test_unbalanced_smart_quotes_are_explained(registry: Registry, opening: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(registry, f"sample echo {opening}node drained --times 2")
    assert info.value.message == (f"no closing quotation: the {opening} at character 13 is "
                                  "never closed")
    with pytest.raises(ParseError, match="no closing quotation"):  # of the other family
        parse(registry, "sample echo “node drained’")


# ------------------------------------------------------------------- bounded numbers

@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("audit --since 999999w", "since: must be at most 366d, got 999999w"),
        ("audit --since 0s", "since: must be at least 1s, got 0s"),
        ("audit --since 0d", "since: must be at least 1s, got 0s"),
        ("sample table --rows 99999999999", "rows: must be at most 1000000000, got 99999999999"),
        ("sample table --rows -1", "rows: must be at least 0, got -1"),
        ("audit --limit 501", "limit: must be at most 500, got 501"),  # declared bounds
        ("audit --limit 0", "limit: must be at least 1, got 0"),
        ("sample echo x --times=-99999999999", "times: must be at least 0, got -99999999999"),
    ],
)
def test_numbers_and_durations_are_bounded(registry: Registry, line: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(registry, line)
    assert info.value.message == message and info.value.spec is not None


def test_slots_declare_their_own_bounds() -> None:
    from bot.commands import Arg, CommandSpec, Opt

    async def nothing(ctx: object) -> None: ...

    spec = CommandSpec("pipeline", "pause", "Pause", nothing, "pipeline.pause",  # type: ignore[arg-type]
                       args=(Arg("for", kind="duration", min_value=60, max_value=4 * 3600),),
                       options=(Opt("limit", kind="int", min_value=1, max_value=500),
                                Opt("offset", kind="int", min_value=-10)))
    registry = Registry()
    registry.add(spec)
    assert parse(registry, "pipeline pause 4h --limit 500 --offset -10").args == \
        {"for": 14400, "limit": 500, "offset": -10}
    for line, message in [("pipeline pause 30s", "for: must be at least 1m, got 30s"),
                          ("pipeline pause 5h", "for: must be at most 4h, got 5h"),
                          ("pipeline pause 1h --limit 0", "limit: must be at least 1, got 0"),
                          ("pipeline pause 1h --limit 501", "limit: must be at most 500, got 501"),
                          ("pipeline pause 1h --offset -11", "offset: must be at least -10")]:
        with pytest.raises(ParseError) as info:
            parse(registry, line)
        assert info.value.message.startswith(message), line
    from bot.helptext import command_help

    fields = dict(command_help(spec).fields)
    assert fields["FOR"] == "duration (1m to 4h)" and fields["--limit"] == "int (1 to 500)"


async def test_out_of_range_is_a_usage_error_not_a_crash(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    for line in ("audit --since 999999w", "audit --limit 99999999999", "audit --since 0s"):
        outcome = await bot.handle(console("alice", line))
        assert outcome.status == OutcomeStatus.USAGE, line
        assert "Usage: audit" in outcome.reply.text and "must be at" in outcome.reply.text


async def test_help_says_how_to_type(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    reply = (await bot.handle(console("alice", "help audit"))).reply
    assert "Curly quotes" in reply.text and "—" in reply.text
    assert dict(reply.fields)["--since"].endswith("(1s to 366d)")


async def test_top_level_help_says_how_to_type(make_bot) -> None:  # type: ignore[no-untyped-def]
    """'help' too, not only 'help COMMAND': a phone's curly quotes are the first thing a
    shifter trips over, before they know which command to ask about."""
    from bot.helptext import TYPING

    bot = await make_bot()
    for who in ("alice", "stranger"):  # the unknown-person note comes first, then how to type
        text = (await bot.handle(console(who, "help"))).reply.text
        assert text.endswith("\n" + TYPING), who
