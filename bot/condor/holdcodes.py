"""HoldReasonCode / HoldReasonSubCode in words (after HTCondor's "Hold Reason Codes" table).

Each entry: the label HTCondor uses (``NumHoldsByReason``), what happened in plain words, and
what a shifter usually does about it.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HoldCode:
    code: int
    label: str
    meaning: str
    hint: str = ""
    subcode: str = ""  # what HoldReasonSubCode carries for this code


HOLD_CODES: dict[int, HoldCode] = {c.code: c for c in [
    HoldCode(1, "UserRequest", "someone put the job on hold (condor_hold or a tool like this bot)",
             "release it when the reason for holding is gone"),
    HoldCode(3, "JobPolicy", "the job's own periodic_hold or on_exit_hold expression became true",
             "read the hold reason: it quotes the expression", "set by the policy"),
    HoldCode(4, "CorruptedCredential", "the job's credentials (proxy, token) are invalid",
             "renew the credential, then release"),
    HoldCode(5, "JobPolicyUndefined", "a job policy expression evaluated to Undefined",
             "fix the expression in the submit description and resubmit"),
    HoldCode(6, "FailedToCreateProcess", "the execute node could not start the executable",
             "check that the executable exists and is executable on the worker node "
             "(subcode = errno)", "errno"),
    HoldCode(7, "UnableToOpenOutput", "the job's output file could not be opened",
             "check the output path and its permissions", "errno"),
    HoldCode(8, "UnableToOpenInput", "the job's input file could not be opened",
             "check the input path", "errno"),
    HoldCode(9, "UnableToOpenOutputStream", "the job's output stream could not be opened", "",
             "errno"),
    HoldCode(10, "UnableToOpenInputStream", "the job's input stream could not be opened", "",
             "errno"),
    HoldCode(11, "InvalidTransferAck", "internal HTCondor protocol error during file transfer",
             "usually transient: release the job"),
    HoldCode(12, "TransferOutputError", "output files could not be transferred back",
             "check the output files the job should produce and the disk on the access point",
             "errno or plugin exit code << 8"),
    HoldCode(13, "TransferInputError", "input files could not be transferred to the execute node",
             "check that every transfer_input_files entry exists and is readable",
             "errno or plugin exit code << 8"),
    HoldCode(14, "IwdError", "the job's initial working directory cannot be accessed",
             "verify initialdir exists and is writable", "errno"),
    HoldCode(15, "SubmittedOnHold", "the job was submitted on hold on purpose",
             "release it when ready"),
    HoldCode(16, "SpoolingInput", "input files are being spooled", "wait for spooling to finish"),
    HoldCode(17, "JobShadowMismatch", "the job is not compatible with the shadow available"),
    HoldCode(18, "InvalidTransferGoAhead", "internal HTCondor protocol error during file transfer",
             "usually transient: release the job"),
    HoldCode(19, "HookPrepareJobFailure", "the execute node's prepare-job hook failed"),
    HoldCode(20, "MissedDeferredExecutionTime", "the job missed its deferred execution time"),
    HoldCode(21, "StartdHeldJob", "the execute node's policy (WANT_HOLD) held the job",
             "ask the pool admins which node policy fired"),
    HoldCode(22, "UnableToInitUserLog", "the job event log could not be initialised",
             "check that the log file's directory exists and is writable"),
    HoldCode(23, "FailedToAccessUserAccount", "the user account could not be accessed"),
    HoldCode(24, "NoCompatibleShadow", "no compatible shadow"),
    HoldCode(25, "InvalidCronSettings", "invalid cron settings"),
    HoldCode(26, "SystemPolicy", "the pool's SYSTEM_PERIODIC_HOLD expression became true",
             "read the hold reason; ask the pool admins if it is unclear"),
    HoldCode(27, "SystemPolicyUndefined", "the pool's periodic job policy evaluated to Undefined"),
    HoldCode(32, "MaxTransferInputSizeExceeded", "the input files exceed MAX_TRANSFER_INPUT_MB"),
    HoldCode(33, "MaxTransferOutputSizeExceeded", "the output files exceed MAX_TRANSFER_OUTPUT_MB"),
    HoldCode(34, "JobOutOfResources", "the job used more than it requested (memory or disk)",
             "resubmit with a larger request_memory / request_disk", "102 memory, 104 disk"),
    HoldCode(35, "InvalidDockerImage", "the Docker image is invalid or could not be pulled",
             "check docker_image in the submit description"),
    HoldCode(36, "FailedToCheckpoint", "the job failed when sent its checkpoint signal"),
    HoldCode(43, "PreScriptFailed", "the job's pre script failed"),
    HoldCode(44, "PostScriptFailed", "the job's post script failed"),
    HoldCode(45, "SingularityTestFailed", "the container runtime test failed on the execute node",
             "usually a node problem: release, and report the node if it repeats"),
    HoldCode(46, "JobDurationExceeded", "the job ran longer than its allowed duration",
             "check whether it hung; raise allowed_job_duration if it was legitimately long"),
    HoldCode(47, "JobExecuteExceeded", "the job's execution time exceeded its limit",
             "check whether it hung; raise allowed_execute_duration if needed"),
    HoldCode(48, "HookShadowPrepareJobFailure", "the shadow's prepare-job hook asked for a hold"),
]}

_RESOURCE_SUBCODES = {102: "memory", 104: "disk"}


def _errno_text(number: int) -> str:
    name = errno.errorcode.get(number)
    if not name:
        return f"errno {number}"
    return f"errno {number} {name}: {os.strerror(number)}"


def explain(code: int | None, subcode: int | None = None) -> str:
    """One line: ``34 JobOutOfResources (memory): the job used more than it requested ...``."""
    if code is None:
        return ""
    entry = HOLD_CODES.get(int(code))
    if entry is None:
        return f"code {code}" + (f"/{subcode}" if subcode else "") + ": not in the table"
    detail = ""
    if subcode:
        if entry.code == 34:
            detail = _RESOURCE_SUBCODES.get(int(subcode), f"subcode {subcode}")
        elif entry.subcode == "errno":
            detail = _errno_text(int(subcode))
        elif entry.code in (12, 13):
            sub = int(subcode)
            if sub == 62:
                detail = "file transfer plugin timed out"
            elif sub >= 256 and sub % 256 == 0:
                detail = f"file transfer plugin exited with {sub >> 8}"
            else:
                detail = _errno_text(sub)
        else:
            detail = f"subcode {subcode}"
    head = f"{entry.code} {entry.label}" + (f" ({detail})" if detail else "")
    text = f"{head}: {entry.meaning}"
    return f"{text}; {entry.hint}" if entry.hint else text


def label(code: int | None) -> str:
    if code is None:
        return ""
    entry = HOLD_CODES.get(int(code))
    return entry.label if entry else str(code)
