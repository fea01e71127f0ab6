"""The replies the core shows about pending requests: confirmation and approval cards, the
notes that replace them once decided, and the errors of the decision gate.

Pure functions of their inputs (no database, no platform): ``bot/core.py`` decides, this
module words it. Every card shows the exact command line and, for commands with a plan step,
what it would do, so nobody confirms or approves "changes things".
"""

from __future__ import annotations

from bot.commands import Plan
from bot.markup import code, user
from bot.pending import Kind, NotRun, PendingRequest, Status
from bot.reply import Action, Choice, Level, Reply, Visibility


def _plan_data(plan: Plan | None) -> dict[str, object]:
    return {"plan": plan.summary if plan else None,
            "plan_details": list(plan.details) if plan else []}


def confirm_card(request: PendingRequest, minutes: float, until: str, *,
                 title: str = "Confirm?", intro: str | None = None) -> Reply:
    """Asks the requester to confirm ``request`` (Confirm / Cancel)."""
    plan = request.plan
    fields = [("Command", code(request.text))]
    if plan is not None:
        fields.append(("Effect", user(plan.summary)))
    fields.append(("Request", request.id))
    question = f"Run {code(request.text)} now?" + (f" It {user(plan.summary)}." if plan else "")
    return Reply(
        title=title, level=Level.WARNING, template="core_confirm.j2",
        data={"text": request.text, "minutes": f"{minutes:g}", "request_id": request.id,
              "intro": intro, "until": until, **_plan_data(plan)},
        fields=fields,
        actions=[Action("Confirm", Choice.CONFIRM, request.id, style="danger",
                        confirm_text=question),
                 Action("Cancel", Choice.CANCEL, request.id)],
        visibility=Visibility.EPHEMERAL,
    )


def approval_card(request: PendingRequest, requester: str, minutes: float,
                  until: str) -> Reply:
    """Asks another holder of the approval role to approve ``request`` (Approve / Deny)."""
    plan = request.plan
    fields = [("Requested by", requester), ("Command", code(request.text))]
    if plan is not None:
        fields.append(("Effect", user(plan.summary)))
    fields += [("Approver role", request.approval_role or ""), ("Request", request.id)]
    return Reply(
        title=f"Approval needed (request {request.id})", level=Level.WARNING,
        template="core_approval.j2",
        data={"requester": requester, "text": request.text, "role": request.approval_role,
              "minutes": f"{minutes:g}", "request_id": request.id, "until": until,
              **_plan_data(plan)},
        fields=fields,
        actions=[Action("Approve", Choice.APPROVE, request.id, style="primary"),
                 Action("Deny", Choice.DENY, request.id, style="danger")],
        visibility=Visibility.CHANNEL,
    )


def dry_run(plan: Plan, *, destructive: bool, approval_role: str | None) -> Reply:
    """``--dry-run``: what the command would do, as its confirmation card would say it."""
    steps = (["asks you to confirm"] if destructive else []) + \
        ([f"needs an approval by role {approval_role}"] if approval_role else [])
    lines = [f"It {user(plan.summary)}.", *(f"- {user(line)}" for line in plan.details),
             "Nothing was run." + (f" Without --dry-run it {' and '.join(steps)} first."
                                   if steps else "")]
    return Reply("\n".join(lines), title="Dry run", level=Level.INFO,
                 visibility=Visibility.EPHEMERAL)


def stopped_note(request: PendingRequest, choice: Choice, by: str, reason: str | None) -> Reply:
    """Cancelled by the requester or denied by an approver: nothing ran."""
    verb = "Cancelled" if choice == Choice.CANCEL else "Denied"
    return Reply(title=f"Request {request.id} {verb.lower()}", level=Level.WARNING,
                 template="core_decided.j2",
                 data={"verb": verb, "by": by, "reason": reason, "text": request.text},
                 visibility=Visibility.CHANNEL if choice == Choice.DENY
                 else Visibility.EPHEMERAL)


def ran_note(request: PendingRequest, by: str, approved: bool, outcome: str) -> Reply:
    return Reply(title=f"Request {request.id}", template="core_decided.j2",
                 data={"verb": "Approved" if approved else "Confirmed", "by": by,
                       "text": request.text, "outcome": outcome},
                 level=Level.OK if outcome == "ok" else Level.ERROR,
                 visibility=Visibility.CHANNEL)


def changed_note(old: PendingRequest, new: PendingRequest) -> Reply:
    """The old request's messages: superseded, because the effect changed before it ran."""
    return Reply(f"What {code(old.text)} would affect changed before it ran; nothing was run. "
                 f"{old.person} was asked to confirm again (request {new.id}).",
                 title=f"Request {old.id} not run", level=Level.WARNING,
                 visibility=Visibility.CHANNEL)


def changed_intro(old: PendingRequest, fresh: Plan) -> str:
    was = old.plan.summary if old.plan else "(no plan recorded)"
    return (f"What this command would affect changed after request {old.id} was made, so "
            f"nothing was run. Confirmed: it {was}. Now: it {fresh.summary}.")


def no_request(request_id: str) -> Reply:
    # The id came with a click or a typed command: whatever it holds, it is shown inert.
    return Reply.error(f"There is no request '{user(request_id)}'. 'approvals' lists the "
                       "requests you may decide.", title="No such request")


def wrong_kind(request: PendingRequest, choice: Choice) -> Reply:
    if request.kind == Kind.APPROVAL:
        what = "approval: 'approve ID' or 'deny ID' (someone else), 'cancel ID' (you)"
    else:
        what = "its requester to 'confirm ID' or 'cancel ID'"
    return Reply.error(f"Request {request.id} is waiting for {what}; '{choice}' does not "
                       "apply to it.", title=f"Cannot {choice} request {request.id}")


def duplicate(existing: PendingRequest, zone_time: str) -> Reply:
    waiting = "approval" if existing.kind == Kind.APPROVAL else "your confirmation"
    return Reply.error(
        f"You already asked for {code(existing.text)}: request {existing.id} is still waiting for "
        f"{waiting} (until {zone_time}). Nothing new was asked; 'cancel {existing.id}' "
        "withdraws it.", title=f"Already requested ({existing.id})")


def expired(request_id: str, zone_time: str) -> Reply:
    return Reply.error(f"Request {request_id} expired at {zone_time}; nothing was run. "
                       "Run the command again to make a new request.",
                       title=f"Request {request_id} expired")


_NOT_RUN = {
    NotRun.INVALID: "it is no longer a valid command",
    NotRun.DENIED: "the requester was no longer allowed to run it",
    NotRun.REFUSED: "it could no longer run as planned (see the request's note)",
    NotRun.CHANGED: "what it would affect changed, so a new request was made",
}


def already_decided(request: PendingRequest | None, request_id: str) -> Reply:
    if request is None:
        return no_request(request_id)
    by = f" by {request.decided_by}" if request.decided_by else ""
    if request.status in (Status.RUNNING, Status.DONE):
        text = (f"Request {request.id} was already decided{by} and ran "
                f"({request.outcome or 'still running'}); nothing was run twice.")
    elif request.status == Status.NOT_RUN:  # decided, then stopped by the run-time checks
        why = _NOT_RUN.get(request.outcome or "", "the checks before running stopped it")
        text = (f"Request {request.id} was already decided{by}, but its command was not run: "
                f"{why}. Nothing is run now; run the command again to make a new request.")
    else:  # cancelled, denied, expired: it never ran
        text = (f"Request {request.id} was already {request.status.value}{by}; its command "
                "was not run, and nothing is run now. Run the command again to make a new "
                "request.")
    return Reply.error(text, title=f"Request {request.id} already decided")
