"""``gitlab_pipeline`` restarts: start the pipeline, post the restart notice, follow the
pipeline in the background and report how it ended -- also when the bot restarted meanwhile.

The notice's key is ``restart:run:<id>``: posting it again (a retry, another replica) is a
no-op. Each status change updates the notice in place; the end (success, failed, canceled,
skipped, not followed within the target's ``timeout_seconds``, or GitLab refusing to show it)
updates it once more, answers in its thread, ends the run and writes its audit row.

Polls back off while nothing changes (``restart.poll_seconds`` growing to ``poll_max_seconds``),
honour a 429's ``Retry-After``, and ride out 5xx and timeouts; a 401/404 while following ends
it with that reason. The follower holds the target's lease, renewed while it runs; a run left
``running`` by a process that died (or stopped) is adopted by :func:`resume` once its lease
has run out (the job ``restart.resume``), so its outcome still reaches the thread and the
audit.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.clock import utcnow
from bot.commands import CommandError
from bot.integrations.gitlab import GitLabError, Pipeline
from bot.reply import Reply
from bot.restart import store
from bot.restart.lock import LEASE, Lease
from bot.restart.replies import pipeline_notice, pipeline_outcome, pipeline_started

if TYPE_CHECKING:
    from bot.restart.actions import PipelineAction, Prepared
    from bot.restart.service import RestartService

log = logging.getLogger(__name__)

START_TRIES = 3  # a 429 on start is retried (GitLab did nothing); anything else is not
START_WAIT_MAX = 30.0


def notice_key(run_id: int) -> str:
    return f"restart:run:{run_id}"


async def start_pipeline(service: RestartService, run_id: int, prepared: Prepared,
                         action: PipelineAction, lease: Lease) -> Reply:
    try:
        pipeline = await _start(service, action)
    except GitLabError as exc:
        # A 4xx changed nothing, so no cooldown; a 5xx or a timeout may have started it.
        await service.finish(run_id, "error", str(exc),
                             effect=exc.status is None or exc.status >= 500)
        raise CommandError(f"restart {prepared.target}: {exc}") from None
    except BaseException:
        await service.finish(run_id, "lost", "the bot stopped while starting the pipeline; "
                             f"look in {service.gitlab().pipelines_url(action.project)}")
        raise
    key = notice_key(run_id) if prepared.channel else None
    deadline = utcnow() + timedelta(seconds=action.timeout)
    await service.bot.database.run(store.change, run_id, pipeline_id=pipeline.id,
                                   pipeline_url=pipeline.web_url[:500],
                                   pipeline_status=pipeline.status, deadline_at=deadline,
                                   notice_key=key)
    run = await service.bot.database.run(store.get, run_id)
    assert run is not None
    if key is not None and prepared.channel is not None:
        try:
            # No owner: people talk in its thread; nothing here answers them.
            await service.bot.notices.post(prepared.channel, pipeline_notice(run, pipeline),
                                           key=key)
        except Exception:  # the restart happened: say so in the reply even if the notice fails
            log.exception("restart %s: posting the notice failed", prepared.target)
    adopt(service, run, lease)
    return pipeline_started(prepared, run, pipeline)


async def _start(service: RestartService, action: PipelineAction) -> Pipeline:
    client = service.gitlab()
    for attempt in range(START_TRIES):
        try:
            if action.trigger_token:
                return await client.trigger_pipeline(action.project, action.trigger_token,
                                                     action.ref, action.variables)
            return await client.create_pipeline(action.project, action.ref, action.variables)
        except GitLabError as exc:
            if exc.status != 429 or attempt == START_TRIES - 1:
                raise
            wait = exc.retry_after if exc.retry_after is not None else 2.0 * 2 ** attempt
            await asyncio.sleep(min(wait, START_WAIT_MAX))
    raise AssertionError("unreachable")


def adopt(service: RestartService, run: store.Run, lease: Lease) -> None:
    """Follow ``run`` in the background, holding ``lease`` until it ends."""
    task = service.tasks.spawn(_follow(service, run, lease), name=f"restart-follow:{run.id}")
    service.following[run.id] = (task, lease)


async def _follow(service: RestartService, run: store.Run, lease: Lease) -> None:
    try:
        await _poll(service, run, lease)
    finally:
        service.following.pop(run.id, None)
        await lease.release()


async def _poll(service: RestartService, run: store.Run, lease: Lease) -> None:
    assert run.project is not None and run.pipeline_id is not None
    config = service.config
    delay = config.poll_seconds
    seen = run.pipeline_status
    deadline = run.deadline_at or utcnow()
    while not lease.lost:
        left = (deadline - utcnow()).total_seconds()
        if left <= 0:
            await _end(service, run, seen or "unknown", timed_out=True)
            return
        await asyncio.sleep(min(delay, left))
        try:
            pipeline = await service.gitlab().pipeline(run.project, run.pipeline_id)
        except GitLabError as exc:
            if not exc.transient:
                await _end(service, run, seen or "unknown", error=str(exc))
                return
            wanted = exc.retry_after if exc.retry_after is not None else delay * 2
            delay = min(max(wanted, config.poll_seconds), config.poll_max_seconds)
            continue
        if pipeline.status != seen:
            seen = pipeline.status
            delay = config.poll_seconds
            await service.bot.database.run(store.change, run.id, pipeline_status=seen)
            if not pipeline.terminal:
                await _notice_update(service, run, pipeline)
        else:
            delay = min(delay * 1.5, config.poll_max_seconds)
        if pipeline.terminal:
            await _end(service, run, pipeline.status, pipeline=pipeline)
            return


async def _end(service: RestartService, run: store.Run, status: str, *,
               pipeline: Pipeline | None = None, timed_out: bool = False,
               error: str | None = None) -> None:
    if timed_out:
        outcome, detail = "timeout", f"pipeline #{run.pipeline_id} still {status} after " \
                                     f"following it for the target's timeout"
    elif error is not None:
        outcome, detail = "error", f"stopped following pipeline #{run.pipeline_id} ({status}): " \
                                   f"{error}"
    else:
        outcome, detail = status, f"pipeline #{run.pipeline_id} {status}"
    detail += f" ({run.pipeline_url})"
    if not await service.finish(run.id, outcome, detail):
        return  # another process reported it
    if run.notice_key is None:
        return
    ended = await service.bot.database.run(store.get, run.id)
    assert ended is not None
    try:
        await service.bot.notices.update(run.notice_key, pipeline_notice(ended, pipeline))
        await service.bot.notices.thread(run.notice_key, pipeline_outcome(ended, detail))
    except Exception:
        log.exception("restart %s: the notice of run %d could not be updated", run.target,
                      run.id)


async def _notice_update(service: RestartService, run: store.Run, pipeline: Pipeline) -> None:
    if run.notice_key is None:
        return
    current = await service.bot.database.run(store.get, run.id)
    try:
        await service.bot.notices.update(run.notice_key, pipeline_notice(current or run,
                                                                         pipeline))
    except Exception:
        log.exception("restart %s: updating the notice of run %d failed", run.target, run.id)


async def resume(service: RestartService) -> list[int]:
    """Adopt the runs left ``running`` by a process that stopped (their lease ran out or was
    released): pipelines are followed again; a command or request whose process went away is
    recorded as ``lost`` (nobody knows how it ended). Returns the run ids adopted."""
    adopted = []
    for run in await service.bot.database.run(store.unfinished):
        if run.id in service.following:
            continue
        lease = await Lease.acquire(service.bot.claims, run.target, LEASE)
        if lease is None:
            continue  # its owner is alive (or its lease has not run out yet)
        fresh = await service.bot.database.run(store.get, run.id)
        if fresh is None or fresh.finished:
            await lease.release()
            continue
        if fresh.kind == "gitlab_pipeline" and fresh.pipeline_id is not None:
            log.info("restart %s: following pipeline #%s of run %d again", fresh.target,
                     fresh.pipeline_id, fresh.id)
            adopt(service, fresh, lease)
            adopted.append(fresh.id)
            continue
        try:
            await service.finish(fresh.id, "lost", "the bot stopped while it ran; how it "
                                 "ended is unknown")
        finally:
            await lease.release()
        adopted.append(fresh.id)
    return adopted
