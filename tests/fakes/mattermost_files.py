"""The fake Mattermost's files, as the server does them (api4/file.go, app/file.go):

- ``POST /api/v4/files`` (multipart/form-data: ``channel_id`` and one or more ``files``
  parts) -> 201 ``{"file_infos": [FileInfo...], "client_ids": []}``; errors: 400
  ``api.context.invalid_param.app_error`` (no or bad channel_id), 400
  ``api.file.upload_file.incorrect_number_of_files.app_error`` (no file part), 403 (not a
  member of the channel), 413 ``api.file.upload_file.too_large_detailed.app_error`` (over
  ``max_file_size``), 501 ``api.file.attachments.disabled.app_error`` (``enabled`` False);
- a post created with ``file_ids`` keeps only the ids its author uploaded to that channel and
  not attached yet (the server drops the others), sets their ``post_id``, and carries the
  FileInfos in ``metadata.files``.

Wired into :class:`fakes.mattermost.FakeMattermost` as ``fake.files``.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from fakes.mattermost import FakeMattermost

MAX_FILE_SIZE = 100 * 1024 * 1024  # the server's default FileSettings.MaxFileSize


@dataclass
class StoredFile:
    id: str
    user_id: str
    channel_id: str
    name: str
    mime_type: str
    data: bytes
    create_at: int
    post_id: str = ""

    def info(self) -> dict[str, Any]:
        extension = self.name.rpartition(".")[2].lower() if "." in self.name else ""
        return {"id": self.id, "user_id": self.user_id, "channel_id": self.channel_id,
                "post_id": self.post_id, "create_at": self.create_at,
                "update_at": self.create_at, "delete_at": 0, "name": self.name,
                "extension": extension, "size": len(self.data), "mime_type": self.mime_type,
                "has_preview_image": self.mime_type.startswith("image/")}


class MattermostFiles:
    def __init__(self, fake: FakeMattermost) -> None:
        self.fake = fake
        self.files: dict[str, StoredFile] = {}
        self.enabled = True  # FileSettings.EnableFileAttachments
        self.max_file_size = MAX_FILE_SIZE

    def install(self, app: web.Application) -> None:
        """Before the catch-all 404 route."""
        app.router.add_post("/api/v4/files", self._upload)

    # ---------------------------------------------------------------- test helpers

    def of_post(self, post_id: str) -> list[StoredFile]:
        return [f for f in self.files.values() if f.post_id == post_id]

    # ---------------------------------------------------------------- the API

    async def _upload(self, request: web.Request) -> web.Response:
        from fakes.mattermost import _REC, _ApiError, _permission_error, new_id

        user = self.fake._session_user(request)
        if not self.enabled:
            raise _ApiError(501, "api.file.attachments.disabled.app_error",
                            "File attachments have been disabled on this server.")
        if not request.content_type.startswith("multipart/form-data"):
            raise _ApiError(400, "api.file.upload_file.read_request.app_error",
                            "Unable to upload file(s). Error reading or parsing request data.")
        fields, parts = _multipart(request.headers["Content-Type"],
                                   request[_REC].body)  # the middleware read the body
        channel = self.fake._channels.get(fields.get("channel_id", ""))
        if not fields.get("channel_id"):
            raise _ApiError(400, "api.context.invalid_param.app_error",
                            "Invalid channel_id parameter.")
        if channel is None or user.id not in channel.members:
            raise _permission_error()
        if not parts:
            raise _ApiError(400, "api.file.upload_file.incorrect_number_of_files.app_error",
                            "Unable to upload files. Incorrect number of files specified.")
        infos = []
        for filename, mime, data in parts:
            if len(data) > self.max_file_size:
                raise _ApiError(413, "api.file.upload_file.too_large_detailed.app_error",
                                f"Unable to upload file {filename}. File is too large.")
            stored = StoredFile(new_id(), user.id, channel.id, filename, mime, data,
                                self.fake._ms())
            self.files[stored.id] = stored
            infos.append(stored.info())
        return self.fake._json({"file_infos": infos, "client_ids": []}, status=201)

    def attach(self, post: dict[str, Any]) -> None:
        """What the server does with a new post's ``file_ids`` (see the module docstring)."""
        kept = []
        for file_id in post.get("file_ids") or []:
            stored = self.files.get(file_id)
            if stored is None or stored.post_id or stored.user_id != post["user_id"] \
                    or stored.channel_id != post["channel_id"]:
                continue
            stored.post_id = post["id"]
            kept.append(stored)
        if not kept:
            post.pop("file_ids", None)
            return
        post["file_ids"] = [f.id for f in kept]
        post.setdefault("metadata", {})["files"] = [f.info() for f in kept]


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, str],
                                                       list[tuple[str, str, bytes]]]:
    """The form fields and the ``files`` parts (name, type, bytes) of a multipart body."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields: dict[str, str] = {}
    files: list[tuple[str, str, bytes]] = []
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if name == "files" and part.get_filename():
            files.append((part.get_filename(), part.get_content_type(), payload))
        elif name:
            fields[str(name)] = payload.decode("utf-8", "replace")
    return fields, files
