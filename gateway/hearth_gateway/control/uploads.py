"""Uploads of dataset and model files: signed URLs on the gateway, files streamed to the
artifact volume.

``:getUploadEndpoint`` answers, per file, a URL on the gateway itself that needs no API
key: it carries an HMAC-SHA256 signature over (account, collection, object, file name,
size, expiry), like a cloud bucket's signed URL, so the Fireworks SDK's upload helper can
PUT to it with a plain HTTP client. The PUT is streamed to
``<upload dir>/uploads/<account>/<collection>/<object>/<file>`` (``{account}`` in the
upload dir is replaced by the account, for one volume per account), refused past the
signed size or the configured limit, written to a temporary file, fsynced and renamed
into place; its SHA-256 is recorded. The pods see the same file as
``pvc://artifacts/uploads/<account>/<collection>/<object>/<file>``: the upload dir is
where the gateway mounts the accounts' artifact storage (in the local setup, the process
kubelet's PVC root's ``artifacts``).

The upload record (``.hearth-upload.json`` next to the files) holds the object's
requested spec, creator and files until ``:validateUpload`` creates the Kubernetes object.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from .errors import ApiError, invalid

RECORD = ".hearth-upload.json"
#: Several dataset files are joined into this one for the Dataset (one JSONL per dataset).
COMBINED = "dataset.jsonl"
#: The collections that take uploads.
UPLOADABLE = ("datasets", "models")
#: Signed URLs stay valid this long (the SDK re-requests them after 45 minutes).
URL_LIFETIME_S = 3600
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")

Json = dict[str, Any]


def check_filename(
    name: str, reserved: tuple[str, ...] = (COMBINED,), field: str = "filenameToSize"
) -> str:
    if not _FILENAME.fullmatch(name) or ".." in name or name in (RECORD, *reserved):
        taken = f", not {', '.join(repr(r) for r in reserved)}" if reserved else ""
        raise invalid(
            f"{field}: {name!r} is not a usable file name (letters, digits, '.', '_' "
            f"and '-', at most 200{taken})"
        )
    return name


@dataclass(frozen=True)
class Signed:
    """What an upload URL allows: one file of one size into one object, until expiry."""

    account: str
    collection: str
    item: str
    filename: str
    size: int
    expires: int


def hmac_hex(secret: bytes, *parts: str) -> str:
    return hmac.new(secret, "\n".join(parts).encode(), hashlib.sha256).hexdigest()


def check_signature(expected: str, signature: str, expires: int, now: float | None) -> None:
    if not hmac.compare_digest(expected, signature):
        raise ApiError(403, "permission denied: the URL's signature does not match")
    if (now if now is not None else time.time()) > expires:
        raise ApiError(403, "permission denied: the URL has expired; request a new one")


class UploadStore:
    def __init__(self, root: str, secret: bytes, max_bytes: int) -> None:
        self.root = root
        self.secret = secret
        self.max_bytes = max_bytes

    # -- places
    def artifacts(self, account: str) -> Path:
        """The account's artifact volume as mounted here (``pvc://artifacts/``)."""
        return Path(self.root.replace("{account}", account))

    def _collection_dir(self, account: str, collection: str) -> Path:
        if collection not in UPLOADABLE:
            raise ValueError(f"no uploads into {collection}")
        return self.artifacts(account) / "uploads" / account / collection

    def item_dir(self, account: str, collection: str, item: str) -> Path:
        return self._collection_dir(account, collection) / item

    # -- records
    def read_record(self, account: str, collection: str, item: str) -> Json | None:
        path = self.item_dir(account, collection, item) / RECORD
        try:
            record: Json = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return record

    def write_record(self, account: str, collection: str, item: str, record: Json) -> None:
        directory = self.item_dir(account, collection, item)
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".record-")
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, directory / RECORD)

    def drop_record(self, account: str, collection: str, item: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.item_dir(account, collection, item) / RECORD).unlink()

    def remove(self, account: str, collection: str, item: str) -> None:
        shutil.rmtree(self.item_dir(account, collection, item), ignore_errors=True)

    def pending(self, account: str, collection: str) -> Iterator[tuple[str, Json]]:
        directory = self._collection_dir(account, collection)
        if not directory.is_dir():
            return
        for child in sorted(directory.iterdir()):
            record = self.read_record(account, collection, child.name)
            if record is not None:
                yield child.name, record

    # -- signatures
    def _signature(self, signed: Signed) -> str:
        return hmac_hex(
            self.secret,
            "PUT",
            signed.account,
            signed.collection,
            signed.item,
            signed.filename,
            str(signed.size),
            str(signed.expires),
        )

    def signed_path(self, signed: Signed) -> str:
        return (
            f"/uploads/v1/accounts/{signed.account}/{signed.collection}/{signed.item}/"
            f"{quote(signed.filename)}?size={signed.size}&expires={signed.expires}"
            f"&signature={self._signature(signed)}"
        )

    def sign(self, account: str, collection: str, item: str, filename: str, size: int) -> Signed:
        self.check_size(filename, size)
        expires = int(time.time()) + URL_LIFETIME_S
        return Signed(account, collection, item, filename, size, expires)

    def check_size(self, filename: str, size: int) -> None:
        if size < 0 or size > self.max_bytes:
            raise invalid(
                f"filenameToSize: {filename} is {size} bytes; uploads are limited to "
                f"{self.max_bytes} bytes"
            )

    def verify(self, signed: Signed, signature: str, now: float | None = None) -> None:
        check_signature(self._signature(signed), signature, signed.expires, now)

    # -- files
    async def receive(self, signed: Signed, chunks: AsyncIterator[bytes]) -> Json:
        """Stream a signed PUT's body into place: {size, sha256}."""
        directory = self.item_dir(signed.account, signed.collection, signed.item)
        return await self.receive_file(directory, signed.filename, chunks, signed.size)

    async def receive_file(
        self, directory: Path, filename: str, chunks: AsyncIterator[bytes], size: int | None
    ) -> Json:
        """Stream ``chunks`` to ``directory/filename``: {size, sha256}. With a ``size``,
        400/413 unless exactly that many bytes come; always 413 past the store's limit.
        Nothing is kept on failure (the file is written aside and renamed at the end)."""
        limit = self.max_bytes if size is None else size
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        fd, tmp = await asyncio.to_thread(tempfile.mkstemp, dir=directory, prefix=".part-")
        handle: BinaryIO = os.fdopen(fd, "wb")
        digest, received = hashlib.sha256(), 0
        try:
            async for chunk in chunks:
                received += len(chunk)
                if received > limit:
                    what = "signed for" if size is not None else "allowed per upload"
                    raise ApiError(413, f"{filename}: more than the {limit} bytes {what}")
                digest.update(chunk)
                await asyncio.to_thread(handle.write, chunk)
            if size is not None and received != size:
                raise invalid(f"{filename}: got {received} bytes, {size} were signed for")
            await asyncio.to_thread(_flush, handle)
            handle.close()
            await asyncio.to_thread(os.replace, tmp, directory / filename)
        except BaseException:
            handle.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return {"size": received, "sha256": digest.hexdigest()}

    def combined(self, account: str, dataset: str, files: list[str]) -> str:
        """The one file the Dataset reads: the only file, or the files joined in order."""
        directory = self.item_dir(account, "datasets", dataset)
        if len(files) == 1:
            return files[0]
        with (directory / COMBINED).open("wb") as out:
            for name in files:
                with (directory / name).open("rb") as part:
                    shutil.copyfileobj(part, out)
                    part.seek(0, os.SEEK_END)
                    if part.tell() > 0:
                        part.seek(-1, os.SEEK_END)
                        if part.read(1) != b"\n":
                            out.write(b"\n")  # JSONL shards need not end with a newline
            os.fsync(out.fileno())
        return COMBINED

    def sha256(self, account: str, collection: str, item: str, filename: str) -> str | None:
        path = self.item_dir(account, collection, item) / filename
        digest = hashlib.sha256()
        try:
            with path.open("rb") as handle:
                while block := handle.read(1 << 20):
                    digest.update(block)
        except FileNotFoundError:
            return None
        return digest.hexdigest()


def _flush(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
