"""The ``flower`` check: Celery workers online/offline through Flower's HTTP API.

(Placeholder: the real implementation lands with the Flower tests.)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.status.model import CheckEnv, CheckResult, CheckSpec


class FlowerCheck(CheckSpec):
    type: Literal["flower"]
    url: str
    workers: list[str] = Field(default_factory=list)  # expected worker names (globs allowed)
    headers: dict[str, str] = Field(default_factory=dict)

    async def run(self, env: CheckEnv) -> CheckResult:
        raise NotImplementedError("flower check")
