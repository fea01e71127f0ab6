"""A tiny Celery app for the ``flower`` peer tests (tests/peers.py starts its worker and Flower).

The broker and result backend come from ``SHIFTBOT_CELERY_BROKER`` (a redis:// URL on loopback
that the tests started), so importing this module never reaches anything else.
"""

from __future__ import annotations

import os
import time

from celery import Celery

BROKER = os.environ.get("SHIFTBOT_CELERY_BROKER", "redis://127.0.0.1:1/0")

app = Celery("shiftbot_test", broker=BROKER, backend=BROKER)
app.conf.update(
    broker_connection_retry_on_startup=True,
    # One prefetched message per process slot keeps "reserved" predictable in the tests.
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
)


@app.task(name="shiftbot_test.sleep")
def sleep(seconds: float) -> float:
    """Hold a worker slot (an "active" task) for ``seconds``."""
    time.sleep(seconds)
    return seconds
