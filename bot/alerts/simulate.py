"""``alerts simulate``: a sample Sentry delivery, signed as Sentry would sign it, stored through
the webhook's own accept path (``webhooks.accept_body``), then processed like any other
(docs/alerts.md, "Trying it"). The demo console has no HTTP server, so this is its Sentry;
the signature shown is the header a curl of the same body needs.
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING

from bot import clock
from bot.alerts import issues, samples
from bot.alerts.payloads import PayloadError
from bot.alerts.signature import sign, verify
from bot.commands import CommandError, Context
from bot.markup import code, user
from bot.reply import Level, Reply

if TYPE_CHECKING:
    from bot.alerts.service import AlertsService

# Signs simulated deliveries when sentry.client_secret is not set. DEMO ONLY: it is public
# (it is in this file); a real deployment sets its own sentry.client_secret.
DEMO_SECRET = "shiftbot-demo-client-secret-not-for-production"


def secret_of(service: AlertsService) -> tuple[str, str]:
    """The secret simulated deliveries are signed with, and how to name it."""
    configured = service.sentry.client_secret
    if configured is not None and configured.get_secret_value():
        return configured.get_secret_value(), "sentry.client_secret"
    return DEMO_SECRET, "the built-in demo secret (sentry.client_secret is not set)"


async def _target(ctx: Context) -> issues.IssueRow:
    ref = ctx.args.get("id")
    if ref:
        found = await ctx.bot.database.run(issues.find, ref)
    else:
        rows, _ = await ctx.bot.database.run(issues.listing, limit=20)
        found = next((row for row in rows if row.issue_id), None)
    if found is None or found.issue_id is None:
        raise CommandError("no Sentry issue to follow up: `alerts simulate` makes one first"
                           if not ref else f"no Sentry issue '{user(ref)}' (`alerts list`)")
    return found


async def build(ctx: Context) -> samples.Sample:
    name = ctx.args.get("sample") or "issue"
    now = clock.utcnow()
    if name in samples.NEW_SAMPLES:
        return samples.new_sample(name, now, level=ctx.args.get("level") or "error",
                                  project=ctx.args.get("project") or "gwcelery",
                                  environment=ctx.args.get("environment") or "production")
    target = await _target(ctx)
    return samples.follow_up(name, target.alert, now)


async def simulate_reply(ctx: Context, service: AlertsService) -> Reply:
    sample = await build(ctx)
    body = json.dumps(sample.payload, separators=(",", ":")).encode()
    secret, secret_name = secret_of(service)
    signature = sign(secret, body)
    if not verify(secret, body, signature):  # the receiving side's own check, as a self-test
        raise CommandError("the simulated delivery's signature does not verify")
    try:
        from bot.alerts.webhooks import accept_body  # with bot.http (aiohttp): on use

        stored = await accept_body(ctx.bot, sample.resource, body,
                                   f"simulate-{secrets.token_hex(8)}")
    except PayloadError as exc:
        raise CommandError(f"the sample does not parse: {exc}") from None
    service.kick()
    action = sample.payload.get("action")
    what = f"{sample.resource}.{action}"
    about = f" for Sentry issue {code(sample.issue_id)}" if sample.issue_id else ""
    if stored is None:
        return Reply(f"Simulated {what}{about}: acknowledged and ignored, as Sentry's would be.")
    if not stored:
        return Reply(f"Simulated {what}{about}: a duplicate of a delivery already stored "
                     "(nothing new to show).")
    return Reply(f"Simulated {what}{about}, signed with {secret_name} "
                 f"(Sentry-Hook-Signature {code(signature[:16] + '…')}): stored in the inbox; "
                 "the processor posts it in a moment. `alerts list` shows it.",
                 title="alerts simulate", level=Level.OK)
