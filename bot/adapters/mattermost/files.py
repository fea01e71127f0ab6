"""Files on Mattermost: ``POST /api/v4/files`` (multipart ``channel_id`` + ``files``) answers
``file_infos``; their ids go into the post's ``file_ids``, so the file is attached to the
message itself. Any failure is :class:`UploadFailed`: the caller posts the text without the
file (logged once), since a digest without its chart is better than no digest.
"""

from __future__ import annotations

import asyncio

from bot.adapters.mattermost.rest import MattermostRest, describe
from bot.reply import FileRef

MAX_FILES = 5  # Mattermost's default limit of files per post


class UploadFailed(Exception):
    """A file could not be uploaded; the post goes without it."""


async def upload(rest: MattermostRest, channel_id: str, files: list[FileRef]) -> list[str]:
    """The ids of ``files`` uploaded to ``channel_id`` (for the post's ``file_ids``)."""
    ids: list[str] = []
    for attached in files[:MAX_FILES]:
        try:
            data = await asyncio.to_thread(attached.read)
            answer = await rest.upload_file(channel_id, attached.name, data, attached.mime)
        except Exception as exc:  # disk, refusal, network: the text goes alone
            reason = describe(exc) if not isinstance(exc, OSError) else f"{exc}"
            raise UploadFailed(f"{attached.name}: {reason}") from None
        infos = answer.get("file_infos") if isinstance(answer, dict) else None
        if not infos or not isinstance(infos, list) or not infos[0].get("id"):
            raise UploadFailed(f"{attached.name}: the server answered no file_infos")
        ids.append(str(infos[0]["id"]))
    return ids
