"""Files: uploads of the files we send (by media id), downloads of the media users send us.

An uploaded file's media id is remembered for 7 days (Meta keeps it for 30), so a file sent
again, or sent as a template's header after a free-form try, is not uploaded twice.
"""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
from cachetools import TTLCache
from pydantic import ValidationError

from bot.channels.pacing import PriorityPacer
from bot.channels.whatsapp.errors import RetryDelays, TooFast, graph_error, raise_for_error
from bot.channels.whatsapp.payloads import MediaInfo, Uploaded
from bot.engine.channel import (
    FetchFailed,
    FileTooLarge,
    PermanentSendError,
    TransientSendError,
)
from bot.engine.events import FileReceived, OutFile
from storage.evidence import EvidenceNotFoundError, EvidenceStore

UPLOAD_TTL = 7 * 86_400.0  # seconds an uploaded file's media id is reused
MAX_UPLOADS = 500  # media ids remembered; an older file is uploaded again if sent again


class Media:
    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        api_url: str,
        phone_number_id: str,
        store: EvidenceStore,
        limiter: PriorityPacer,
        delays: RetryDelays,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.api_url = api_url
        self.upload_url = f"{api_url}/{phone_number_id}/media"
        self.store = store
        self._limiter = limiter  # an upload counts against the number's message rate
        self.delays = delays
        # storage key -> (media id, MIME type)
        self._uploads: TTLCache[str, tuple[str, str]] = TTLCache(
            maxsize=MAX_UPLOADS, ttl=UPLOAD_TTL, timer=clock
        )

    async def upload(self, message: OutFile) -> tuple[str, str]:
        """(media id, MIME type) of a stored file, uploading it unless done lately."""
        if (cached := self._uploads.get(message.storage_key)) is not None:
            return cached
        try:
            data = await self.store.get(message.storage_key)
        except (EvidenceNotFoundError, ValueError) as error:
            raise PermanentSendError(f"file {message.storage_key} not in the store") from error
        mime = mimetypes.guess_type(message.filename)[0] or "application/octet-stream"
        async with self._limiter:  # its answer gives its place in the window back
            try:
                response = await self._client.post(
                    self.upload_url,
                    data={"messaging_product": "whatsapp", "type": mime},
                    files={"file": (message.filename, data, mime)},
                    timeout=httpx.Timeout(120.0, connect=5.0),
                )
            except httpx.HTTPError as error:
                raise TransientSendError(f"upload: {error!r}") from error
        try:
            raise_for_error(response, self.delays)
        except TooFast as error:
            self._limiter.pause(error.retry_after or 0.0)  # the number's pace, as for a send
            raise
        try:
            media_id = Uploaded.model_validate_json(response.content).id
        except ValidationError as error:
            raise TransientSendError("unreadable upload response") from error
        self._uploads[message.storage_key] = (media_id, mime)
        return media_id, mime

    async def fetch(self, event: FileReceived, *, max_bytes: int) -> bytes:
        """Media id -> short-lived URL -> bytes, refusing anything over `max_bytes` early."""
        info = await self._info(event.file_ref)
        if info.file_size is not None and info.file_size > max_bytes:
            raise FileTooLarge(info.file_size, max_bytes)
        if not self._trusted(info.url):
            raise FetchFailed(f"unexpected media URL for {event.file_ref}")
        try:
            return await self._download(info.url, max_bytes)
        except httpx.HTTPError as error:
            raise FetchFailed(f"download of {event.file_ref}: {error!r}") from error

    async def _info(self, media_id: str) -> MediaInfo:
        try:
            response = await self._client.get(f"{self.api_url}/{media_id}")
        except httpx.HTTPError as error:
            raise FetchFailed(f"media {media_id}: {error!r}") from error
        if response.status_code >= 400:
            raise FetchFailed(f"media {media_id}: {graph_error(response)[1]}")
        try:
            return MediaInfo.model_validate_json(response.content)
        except ValidationError as error:
            raise FetchFailed(f"media {media_id}: unreadable answer") from error

    def _trusted(self, url: str) -> bool:
        """The bearer token goes with the download: only to https, or to the API's own host."""
        parts = urlsplit(url)
        return parts.scheme == "https" or parts.netloc == urlsplit(self.api_url).netloc

    async def _download(self, url: str, max_bytes: int) -> bytes:
        timeout = httpx.Timeout(60.0, connect=5.0)
        async with self._client.stream("GET", url, timeout=timeout) as response:
            if response.status_code >= 400:  # 404 also means the 5-minute URL expired
                raise FetchFailed(f"media download answered {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise FileTooLarge(int(declared), max_bytes)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FileTooLarge(size, max_bytes)
                chunks.append(chunk)
        return b"".join(chunks)
