"""The ``nagios`` check: any Nagios/Icinga/monitoring-plugins plugin, run as is.

Exit codes 0/1/2/3 are OK/WARNING/CRITICAL/UNKNOWN; the first output line is the summary,
perfdata after ``|`` (bot/status/perfdata.py), further lines are long output. Anything outside
the API (another exit code, a signal, no output, binary output) is UNKNOWN saying so.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Literal

from pydantic import Field

from bot.status.model import CheckEnv, CheckResult, CheckSpec, Level
from bot.status.perfdata import split_output
from bot.status.procs import (
    OUTPUT_LIMIT,
    Argv,
    Environment,
    ProcOutput,
    ProgramError,
    child_environment,
    decode,
    resolve,
    run_program,
)

# Where distributions install plugins: a bare program name is looked up here after PATH.
PLUGIN_DIRS = ["/usr/lib/nagios/plugins", "/usr/lib64/nagios/plugins",
               "/usr/local/nagios/libexec", "/usr/lib/monitoring-plugins"]
SUMMARY_LIMIT = 500  # characters of the first line kept as the summary


class NagiosCheck(CheckSpec):
    type: Literal["nagios"]
    command: Argv  # [check_disk, -w, "10%", -c, "5%", -p, /]
    environment: Environment = Field(default_factory=dict)  # added to PATH, LANG, TZ, HOME
    plugin_dirs: list[str] = Field(default_factory=lambda: list(PLUGIN_DIRS))
    max_output_bytes: int = Field(OUTPUT_LIMIT, ge=1024, le=1024 * 1024)

    async def run(self, env: CheckEnv) -> CheckResult:
        output = await run_command(self.command, self.environment, self.plugin_dirs,
                                   self.max_output_bytes)
        if isinstance(output, CheckResult):
            return output
        return interpret(output)


async def run_command(command: list[str], environment: dict[str, str],
                      plugin_dirs: list[str], limit: int) -> ProcOutput | CheckResult:
    """Run a configured command; an UNKNOWN result when it cannot start."""
    variables = child_environment(environment)
    try:
        argv = await asyncio.to_thread(resolve, command, variables, plugin_dirs)
        return await run_program(argv, env=variables, limit=limit)
    except ProgramError as exc:
        return CheckResult(Level.UNKNOWN, f"cannot run {exc}")


def interpret(output: ProcOutput) -> CheckResult:
    """A plugin's exit and output under the plugin API."""
    failure = program_failure(output)
    if failure is not None:
        return failure
    text, _ = decode(output.stdout)
    summary, long_output, perfdata = split_output(text)
    if output.returncode not in (0, 1, 2, 3):
        return CheckResult(Level.UNKNOWN,
                           f"exited with {output.returncode}, not 0-3: {_cut(summary)}",
                           long_output=_notes(long_output, output), perfdata=tuple(perfdata))
    if not summary:
        return CheckResult(Level.UNKNOWN, f"empty first line (exit {output.returncode})",
                           long_output=_notes(long_output, output), perfdata=tuple(perfdata))
    return CheckResult(Level(output.returncode), _cut(summary),
                       long_output=_notes(long_output, output), perfdata=tuple(perfdata))


def program_failure(output: ProcOutput) -> CheckResult | None:
    """UNKNOWN when the program died by a signal, printed nothing or printed binary junk."""
    text, is_text = decode(output.stdout)
    if output.signal is not None:
        return CheckResult(Level.UNKNOWN, f"killed by signal {_signal_name(output.signal)}",
                           long_output=_notes(text.strip(), output))
    if not is_text:
        return CheckResult(Level.UNKNOWN, f"output is not text (exit {output.returncode})",
                           long_output=_notes("", output))
    if not text.strip():
        return CheckResult(Level.UNKNOWN, f"no output (exit {output.returncode})",
                           long_output=_notes("", output))
    return None


def _notes(long_output: str, output: ProcOutput) -> str:
    notes = [long_output] if long_output else []
    if output.dropped:
        notes.append(f"(output cut: {output.dropped} more bytes dropped)")
    if output.pipe_held:
        notes.append("(a process it started kept the output open and was killed)")
    errors, _ = decode(output.stderr)
    if errors.strip():
        notes.append("stderr: " + "\n".join(errors.strip().splitlines()[:10]))
    return "\n".join(notes)


def _signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name} ({number})"
    except ValueError:
        return str(number)


def _cut(text: str) -> str:
    return text if len(text) <= SUMMARY_LIMIT else text[:SUMMARY_LIMIT - 1] + "…"
