"""Dataset uploads: signed URLs on the gateway, files streamed to the artifact volume.

``:getUploadEndpoint`` answers, per file, a URL on the gateway itself that needs no API
key: it carries an HMAC-SHA256 signature over (account, dataset, file name, size,
expiry), like a cloud bucket's signed URL, so the Fireworks SDK's upload helper can PUT
to it with a plain HTTP client. The PUT is streamed to
``<upload dir>/uploads/<account>/datasets/<dataset>/<file>`` (``{account}`` in the upload
dir is replaced by the account, for one volume per account), refused past the signed size
or the configured limit, written to a temporary file, fsynced and renamed into place;
its SHA-256 is recorded. The pods see the same file as
``pvc://artifacts/uploads/<account>/datasets/<dataset>/<file>``: the upload dir is where
the gateway mounts the accounts' artifact storage (in the local setup, the process
kubelet's PVC root's ``artifacts``).

The upload record (``.hearth-upload.json`` next to the files) holds the dataset's
requested spec, creator and files until ``:validateUpload`` creates the Dataset object.
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
#: Several files are joined into this one for the Dataset (one JSONL per dataset).
COMBINED = "dataset.jsonl"
#: Signed URLs stay valid this long (the SDK re-requests them after 45 minutes).
URL_LIFETIME_S = 3600
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")

Json = dict[str, Any]


def check_filename(name: str) -> str:
    if not _FILENAME.fullmatch(name) or ".." in name or name in (RECORD, COMBINED):
        raise invalid(
            f"filenameToSize: {name!r} is not a usable file name (letters, digits, '.', '_' "
            f"and '-', at most 200, not {COMBINED!r})"
        )
    return name


@dataclass(frozen=True)
class Signed:
    account: str
    dataset: str
    filename: str
    size: int
    expires: int


class UploadStore:
    def __init__(self, root: str, secret: bytes, max_bytes: int) -> None:
        self.root = root
        self.secret = secret
        self.max_bytes = max_bytes

    # -- places
    def dataset_dir(self, account: str, dataset: str) -> Path:
        base = Path(self.root.replace("{account}", account))
        return base / "uploads" / account / "datasets" / dataset

    def _datasets_dir(self, account: str) -> Path:
        return Path(self.root.replace("{account}", account)) / "uploads" / account / "datasets"

    # -- records
    def read_record(self, account: str, dataset: str) -> Json | None:
        path = self.dataset_dir(account, dataset) / RECORD
        try:
            record: Json = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return record

    def write_record(self, account: str, dataset: str, record: Json) -> None:
        directory = self.dataset_dir(account, dataset)
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".record-")
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, directory / RECORD)

    def drop_record(self, account: str, dataset: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dataset_dir(account, dataset) / RECORD).unlink()

    def remove(self, account: str, dataset: str) -> None:
        shutil.rmtree(self.dataset_dir(account, dataset), ignore_errors=True)

    def pending(self, account: str) -> Iterator[tuple[str, Json]]:
        directory = self._datasets_dir(account)
        if not directory.is_dir():
            return
        for child in sorted(directory.iterdir()):
            record = self.read_record(account, child.name)
            if record is not None:
                yield child.name, record

    # -- signatures
    def _signature(self, signed: Signed) -> str:
        message = "\n".join(
            [signed.account, signed.dataset, signed.filename, str(signed.size), str(signed.expires)]
        )
        return hmac.new(self.secret, message.encode(), hashlib.sha256).hexdigest()

    def signed_path(self, signed: Signed) -> str:
        return (
            f"/uploads/v1/accounts/{signed.account}/datasets/{signed.dataset}/"
            f"{quote(signed.filename)}?size={signed.size}&expires={signed.expires}"
            f"&signature={self._signature(signed)}"
        )

    def sign(self, account: str, dataset: str, filename: str, size: int) -> Signed:
        if size < 0 or size > self.max_bytes:
            raise invalid(
                f"filenameToSize: {filename} is {size} bytes; uploads are limited to "
                f"{self.max_bytes} bytes"
            )
        return Signed(account, dataset, filename, size, int(time.time()) + URL_LIFETIME_S)

    def verify(self, signed: Signed, signature: str, now: float | None = None) -> None:
        expected = self._signature(signed)
        if not hmac.compare_digest(expected, signature):
            raise ApiError(403, "permission denied: the upload URL's signature does not match")
        if (now if now is not None else time.time()) > signed.expires:
            raise ApiError(403, "permission denied: the upload URL has expired; request a new one")

    # -- files
    async def receive(self, signed: Signed, chunks: AsyncIterator[bytes]) -> Json:
        """Stream the body into place; {size, sha256}. 400/413 when the size is not the
        signed one (nothing is kept then)."""
        directory = self.dataset_dir(signed.account, signed.dataset)
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        fd, tmp = await asyncio.to_thread(tempfile.mkstemp, dir=directory, prefix=".part-")
        handle: BinaryIO = os.fdopen(fd, "wb")
        digest, size = hashlib.sha256(), 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > signed.size:
                    raise ApiError(
                        413, f"{signed.filename}: more than the {signed.size} bytes signed for"
                    )
                digest.update(chunk)
                await asyncio.to_thread(handle.write, chunk)
            if size != signed.size:
                raise invalid(f"{signed.filename}: got {size} bytes, {signed.size} were signed for")
            await asyncio.to_thread(_flush, handle)
            handle.close()
            await asyncio.to_thread(os.replace, tmp, directory / signed.filename)
        except BaseException:
            handle.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return {"size": size, "sha256": digest.hexdigest()}

    def combined(self, account: str, dataset: str, files: list[str]) -> str:
        """The one file the Dataset reads: the only file, or the files joined in order."""
        directory = self.dataset_dir(account, dataset)
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

    def sha256(self, account: str, dataset: str, filename: str) -> str | None:
        path = self.dataset_dir(account, dataset) / filename
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
