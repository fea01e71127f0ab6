#!/usr/bin/env python3
"""Write a sample Sentry webhook body and print the curl that delivers it, signed as Sentry
signs it (hex HMAC-SHA256 of the exact body with the integration's client secret), so a
running bot (`shiftbot run`) can be tried without Sentry (docs/alerts.md, "Trying it").

    SENTRY_CLIENT_SECRET=... scripts/sentry-sign-sample.py --sample event --out /tmp/body.json

prints ``curl ... --data-binary @/tmp/body.json``; run it. The secret comes from the
environment (default: the demo's public secret, config/demo.yaml), never from the command line,
and is not printed: only the signature is.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.alerts import samples
from bot.alerts.signature import sign
from bot.alerts.simulate import DEMO_SECRET
from bot.clock import utcnow


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", choices=samples.NEW_SAMPLES, default="issue")
    parser.add_argument("--level", default="error", choices=("debug", "info", "warning",
                                                             "error", "fatal"))
    parser.add_argument("--project", default="gwcelery")
    parser.add_argument("--environment", default="production")
    parser.add_argument("--out", type=Path, default=Path("sentry-sample.json"),
                        help="where to write the body (default: ./sentry-sample.json)")
    parser.add_argument("--url", default="http://127.0.0.1:8080/webhooks/sentry",
                        help="the bot's webhook URL")
    args = parser.parse_args()
    secret = os.environ.get("SENTRY_CLIENT_SECRET") or DEMO_SECRET
    sample = samples.new_sample(args.sample, utcnow(), level=args.level,
                                project=args.project, environment=args.environment)
    body = json.dumps(sample.payload, separators=(",", ":")).encode()
    args.out.write_bytes(body)
    print(shlex.join([
        "curl", "-sS", "-X", "POST", args.url, "-H", "Content-Type: application/json",
        "-H", f"Sentry-Hook-Resource: {sample.resource}",
        "-H", f"Sentry-Hook-Signature: {sign(secret, body)}",
        "-H", "Request-ID: sample-1", "--data-binary", f"@{args.out}"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
