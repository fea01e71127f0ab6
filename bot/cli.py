"""The ``shiftbot`` command. Imports stay lazy: ``shiftbot console -c help`` must start fast."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any


class _Version(argparse.Action):
    """--version: the installed metadata is read only when asked (it costs start-up time)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        from bot import __version__

        print(f"shiftbot {__version__}")  # on stdout, as argparse's own version action
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shiftbot",
        description="ChatOps for the on-call shifters of scientific pipelines.",
    )
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="show the program's version number and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", metavar="PATH",
                       help="config file (default: $SHIFTBOT_CONFIG, else config/shiftbot.yaml)")
        return p

    console = with_config(sub.add_parser("console", help="an interactive console (or one command)"))
    who = console.add_mutually_exclusive_group()
    who.add_argument("--as", dest="person", metavar="PERSON",
                     help="act as this configured person (default: bot.console_person)")
    who.add_argument("--anonymous", action="store_true",
                     help="act as an unidentified platform user (to try the deny path)")
    console.add_argument("--channel", metavar="NAME", help="channel alias to act in")
    console.add_argument("-c", dest="one_shot", metavar="COMMAND",
                         help="run one command and exit: 0 ok, 1 error, 2 denied, "
                              "3 waiting for confirmation/approval")
    with_config(sub.add_parser("run", help="run the bot: adapters, HTTP server, scheduler"))
    with_config(sub.add_parser("check-config", help="validate the configuration"))
    with_config(sub.add_parser("doctor", help="check the real connections (database, chat, "
                                              "Sentry, GitLab, HTCondor, status checks)"))
    mattermost = sub.add_parser("mattermost", help="Mattermost tools")
    mm_sub = mattermost.add_subparsers(dest="mm_command", metavar="ACTION", required=True)
    with_config(mm_sub.add_parser(
        "register-commands",
        help="create or update the slash commands on the server and print their tokens"))
    return parser


def _fail(message: str) -> int:
    """What the operator must fix, as one line on stderr (masked), instead of a traceback."""
    from bot.secrets import masker

    print(f"shiftbot: {masker.mask(message)}", file=sys.stderr)
    return 1


def _load(path: str | None):  # type: ignore[no-untyped-def]
    from bot.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:  # one line each, with its key path
            _fail(str(problem))
        raise SystemExit(1) from None


def check_config(path: str | None) -> int:
    from bot.config import ConfigError, load_config
    from bot.configchecks import check_references, summary
    from bot.registry import Registry
    from bot.secrets import masker

    try:
        config = load_config(path)
        registry = Registry().load(config.bot.handlers)
    except ConfigError as exc:
        for problem in exc.problems:
            print(masker.mask(str(problem)))
        print(f"{len(exc.problems)} problem(s) found.")
        return 1
    problems = check_references(config, registry)
    for problem in problems:
        print(masker.mask(str(problem)))
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        print(f"{len(errors)} problem(s) found.")
        return 1
    print(summary(config, registry))  # warnings alone do not fail the check
    return 0


async def _console(args: argparse.Namespace) -> int:
    from bot.adapters.console import ConsoleAdapter, ConsoleSession
    from bot.config import ConfigError
    from bot.configchecks import check_references
    from bot.observability import init_sentry

    config = _load(args.config)
    person = None if args.anonymous else (args.person or config.bot.console_person)
    if person is not None and person not in config.people:
        known = ", ".join(sorted(config.people)) or "nobody"
        print(f"shiftbot: no person '{person}' in the config (known: {known})", file=sys.stderr)
        return 1
    init_sentry(config)
    session = ConsoleSession(person, args.channel)
    answered = None
    if args.one_shot is not None:
        # `help` needs no database: answered before the bot starts, audited once it has.
        from bot.adapters.console import format_reply
        from bot.quickhelp import console_help

        answered = await console_help(config, session.inbound(args.one_shot))
        if answered is not None:
            print(format_reply(answered.reply), flush=True)
    # The lifecycle without an HTTP server; periodic jobs only in the REPL (a one-shot command
    # is over before the first would be due).
    from bot.lifecycle import Lifecycle

    lifecycle = Lifecycle(config, http=False, jobs=args.one_shot is None,
                          adapters=lambda bot: [ConsoleAdapter(bot, session)])
    try:
        bot = await lifecycle.start()
    except ConfigError as exc:
        problems = exc.problems
    else:
        problems = [p for p in check_references(config, bot.registry) if p.severity == "error"]
    try:
        if problems:
            print("Configuration problems (run 'shiftbot check-config'):", file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
            return 1
        console = lifecycle.adapters[0]
        if args.one_shot is not None:
            return await console.run_once(args.one_shot, answered)
        return await console.repl()
    finally:
        await lifecycle.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 0
    if args.command == "check-config":
        return check_config(args.config)
    if args.command == "doctor":  # bot/doctor.py; exit status 1 when something is broken
        from bot.doctor import doctor
        from bot.observability import setup_logging

        setup_logging("ERROR")
        return doctor(args.config)
    from bot.observability import setup_logging

    if args.command == "console":
        setup_logging("WARNING")
        from bot.dberrors import DatabaseError

        try:
            return asyncio.run(_console(args))
        except DatabaseError as exc:
            return _fail(str(exc))
        except BrokenPipeError:  # `shiftbot console -c help | head`: the reader left
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        except KeyboardInterrupt:  # Ctrl-C at a prompt: leave at once, no traceback
            # The bot is closed by now (its finally ran). A daemon thread still blocked in
            # input() holds stdin's lock, which a normal interpreter exit would wait on and
            # then abort with a fatal error: leave without that teardown.
            print(file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
    setup_logging("INFO")
    config = _load(args.config)
    if args.command == "run":
        from bot.config import ConfigError
        from bot.db import DatabaseError
        from bot.runtime import StartupError, serve

        try:
            asyncio.run(serve(config))
        except ConfigError as exc:  # a feature section (validated once handlers are loaded)
            for problem in exc.problems:
                _fail(str(problem))
            return 1
        except (StartupError, DatabaseError) as exc:
            return _fail(str(exc))
        return 0
    if args.command == "mattermost":
        from bot.adapters.mattermost import register_commands_cli

        return asyncio.run(register_commands_cli(config))
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
