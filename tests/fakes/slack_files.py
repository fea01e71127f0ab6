"""The fake Slack's files: the external upload, as Slack's Web API documents it.

- ``files.getUploadURLExternal`` (form or query: ``filename``, ``length``, ``alt_txt``) ->
  ``{"ok": true, "upload_url": ".../upload/F...", "file_id": "F..."}``; errors
  ``invalid_arguments`` (no filename), ``missing_argument`` (length missing or 0),
  ``alt_txt_too_large`` (over 1,000 characters);
- ``POST /upload/{file_id}``: the bytes (raw body, or multipart with a ``file``/``filename``
  part) -> 200 ``OK - <length>``; an unknown id is 404; :meth:`SlackFiles.fail_uploads` makes
  the next uploads fail with a status;
- ``files.completeUploadExternal`` (JSON or form; ``files`` a JSON list of ``{id, title}``,
  ``channel_id``, ``thread_ts``, ``initial_comment``) -> ``{"ok": true, "files": [{id, name,
  title, mimetype, size, ...}]}``; errors ``invalid_arguments`` (no files),
  ``file_not_found`` (an id never issued, or whose bytes never arrived or do not match its
  length), ``channel_not_found``, ``not_in_channel``, ``thread_not_found``. Shared with a
  channel, the file shows as a message there (``source="files.completeUploadExternal"``,
  ``params["files"]`` the ids) in the thread ``thread_ts`` names.

Wired into :class:`fakes.slack.FakeSlack` as ``fake.files`` (its API handlers and the upload
route).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from fakes.slack import FakeSlack

ALT_LIMIT = 1000


@dataclass
class FakeFile:
    id: str
    filename: str
    length: int
    alt: str = ""
    data: bytes | None = None  # None until uploaded
    content_type: str = ""
    title: str = ""
    shares: list[tuple[str, str | None]] = field(default_factory=list)  # (channel, thread_ts)


class SlackFiles:
    def __init__(self, fake: FakeSlack) -> None:
        from fakes.slack import _ApiError

        self.fake = fake
        self.error = _ApiError
        self.files: dict[str, FakeFile] = {}
        self.upload_faults: list[int] = []  # statuses for the next uploads
        fake._api_handlers["files.getUploadURLExternal"] = self._get_upload_url
        fake._api_handlers["files.completeUploadExternal"] = self._complete

    def install(self, app: web.Application) -> None:
        app.router.add_post("/upload/{file_id}", self._handle_upload)

    # ---------------------------------------------------------------- test helpers

    def fail_uploads(self, status: int = 500, *, times: int = 1) -> None:
        """The next ``times`` uploads of bytes answer HTTP ``status``."""
        self.upload_faults += [status] * times

    def shared(self, channel: str | None = None) -> list[FakeFile]:
        """Files shared (in ``channel``, an id or a name), in the order they were shared."""
        cid = self.fake.channel(channel).id if channel else None
        return [f for f in self.files.values() if f.shares
                and (cid is None or any(c == cid for c, _ in f.shares))]

    # ---------------------------------------------------------------- the API

    def _get_upload_url(self, params: dict[str, Any], _: str) -> dict[str, Any]:
        filename = str(params.get("filename") or "")
        if not filename:
            raise self.error("invalid_arguments")
        try:
            length = int(params.get("length") or 0)
        except (TypeError, ValueError):
            raise self.error("invalid_arguments") from None
        if length <= 0:
            raise self.error("missing_argument")
        alt = str(params.get("alt_txt") or "")
        if len(alt) > ALT_LIMIT:
            raise self.error("alt_txt_too_large")
        file_id = "F" + self.fake._hex(10).upper()
        self.files[file_id] = FakeFile(file_id, filename, length, alt)
        return {"ok": True, "upload_url": f"{self.fake.base_url}/upload/{file_id}",
                "file_id": file_id}

    async def _handle_upload(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["file_id"])
        if found is None:
            return web.Response(status=404, text="file not found")
        if self.upload_faults:
            return web.Response(status=self.upload_faults.pop(0), text="upload failed")
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            part = form.get("file") or form.get("filename")
            data = part.file.read() if hasattr(part, "file") else str(part or "").encode()
        else:
            data = await request.read()
        found.data, found.content_type = data, request.content_type
        return web.Response(status=200, text=f"OK - {len(data)}")

    def _complete(self, params: dict[str, Any], _: str) -> dict[str, Any]:
        wanted = params.get("files")
        if isinstance(wanted, str):
            try:
                wanted = json.loads(wanted)
            except ValueError:
                raise self.error("invalid_arguments") from None
        if not isinstance(wanted, list) or not wanted:
            raise self.error("invalid_arguments")
        chosen = []
        for entry in wanted:
            found = self.files.get(str((entry or {}).get("id") or ""))
            if found is None or found.data is None or len(found.data) != found.length:
                raise self.error("file_not_found")
            chosen.append((found, str(entry.get("title") or found.filename)))
        channel_id = params.get("channel_id")
        if channel_id:
            self._share(str(channel_id), params, chosen)
        for found, title in chosen:
            found.title = title
        return {"ok": True, "files": [self._api_file(f) for f, _ in chosen]}

    def _share(self, channel_id: str, params: dict[str, Any],
               chosen: list[tuple[FakeFile, str]]) -> None:
        from fakes.slack import Message

        ch = self.fake._resolve_channel(channel_id)
        if not ch.is_member and not ch.is_im:
            raise self.error("not_in_channel")
        thread_ts = str(params.get("thread_ts") or "") or None
        if thread_ts and self.fake.message(ch.id, thread_ts) is None:
            raise self.error("thread_not_found")
        msg = Message(channel=ch.id, ts=self.fake._next_ts(),
                      text=str(params.get("initial_comment") or ""), blocks=None,
                      thread_ts=thread_ts, user=self.fake.bot_user_id,
                      source="files.completeUploadExternal",
                      params={**params, "files": [f.id for f, _ in chosen]})
        self.fake._messages.append(msg)
        for found, _title in chosen:
            found.shares.append((ch.id, thread_ts))

    @staticmethod
    def _api_file(found: FakeFile) -> dict[str, Any]:
        return {"id": found.id, "name": found.filename, "title": found.title or found.filename,
                "mimetype": found.content_type or "application/octet-stream",
                "size": len(found.data or b""), "alt_txt": found.alt,
                "channels": sorted({c for c, _ in found.shares})}
