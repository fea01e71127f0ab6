"""Files on Slack: the external upload (``files.upload`` is retired).

1. ``files.getUploadURLExternal`` (form fields ``filename``, ``length``, ``alt_txt``) answers
   ``upload_url`` and ``file_id``;
2. the bytes are POSTed to ``upload_url`` (raw body; Slack answers 200);
3. ``files.completeUploadExternal`` (JSON: ``files=[{id, title}]``, ``channel_id``,
   ``thread_ts``, ``initial_comment``) shares the file.

Slack has no way to attach a file to a message posted by ``chat.postMessage`` (which carries
the notice's tag and gives its ts), so the file is shared in that message's thread
(``thread_ts``: the message, or the root of the thread it is in), right under it, with its
alt text as the comment. Any failure is :class:`UploadFailed`: the message is out already,
so the caller logs it and carries on (the text stands without the file).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError

from bot.adapters.slack.outbound import Outbox, Post
from bot.reply import FileRef

COMMENT_LIMIT = 300


class UploadFailed(Exception):
    """A file could not be shared; the message it goes with was sent."""


async def share(outbox: Outbox, channel_id: str, thread_ts: str, files: list[FileRef]) -> int:
    """Upload ``files`` and share them in ``thread_ts``'s thread; how many were shared.
    UploadFailed on the first failure (the ones before it are shared)."""
    done = 0
    for attached in files:
        try:
            data = await asyncio.to_thread(attached.read)
            file_id = await _upload(outbox, attached, data)
            await outbox.send_once(channel_id, Post("files.completeUploadExternal", {
                "files": [{"id": file_id, "title": attached.name}],
                "channel_id": channel_id, "thread_ts": thread_ts,
                "initial_comment": (attached.alt or attached.name)[:COMMENT_LIMIT]}))
        except UploadFailed:
            raise
        except SlackApiError as exc:
            error = exc.response.get("error") if hasattr(exc.response, "get") else exc
            raise UploadFailed(f"{attached.name}: {error}") from None
        except Exception as exc:  # disk, network, rate limit: the text stands alone
            raise UploadFailed(f"{attached.name}: {type(exc).__name__}: {exc}") from None
        done += 1
    return done


async def _upload(outbox: Outbox, attached: FileRef, data: bytes) -> str:
    params: dict[str, Any] = {"filename": attached.name, "length": len(data)}
    if attached.alt:
        params["alt_txt"] = attached.alt[:1000]
    answer = await outbox.read("files.getUploadURLExternal", params)
    url, file_id = answer.get("upload_url"), answer.get("file_id")
    if not url or not file_id:
        raise UploadFailed(f"{attached.name}: files.getUploadURLExternal gave no upload_url")
    if outbox.session is None or outbox.session.closed:
        outbox.session = aiohttp.ClientSession(trust_env=True)
    async with outbox.session.post(
            str(url), data=data, headers={"Content-Type": attached.mime},
            timeout=aiohttp.ClientTimeout(total=outbox.timeout * 3)) as response:
        body = await response.text()
        if response.status != 200:
            raise UploadFailed(f"{attached.name}: upload refused: HTTP {response.status} "
                               f"{body[:100]}")
    return str(file_id)
