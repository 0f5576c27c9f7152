"""Downloads: signed GET URLs on the gateway for files on an account's artifact volume.

``:getDownloadEndpoint`` of a model or dataset whose ``source.uri`` is
``pvc://artifacts/<path>`` (an upload, a fine-tuned adapter) answers one URL per file.
A URL carries an HMAC-SHA256 signature over (account, path, expiry): it opens exactly
that file of that account until it expires, with no API key. The path is checked twice
against traversal: every segment must be a plain name (no ``..``, no hidden entries), and
the file, symlinks resolved, must lie inside the account's artifact directory.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .errors import ApiError
from .uploads import URL_LIFETIME_S, UploadStore, check_signature, hmac_hex

ARTIFACTS = "pvc://artifacts/"
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$")
#: At most this many files in one answer (a model directory is a handful).
MAX_FILES = 1000


def artifact_path(uri: object) -> str | None:
    """``pvc://artifacts/a/b`` -> ``a/b``; None for anything not on the artifact volume."""
    if not isinstance(uri, str) or not uri.startswith(ARTIFACTS):
        return None
    return uri.removeprefix(ARTIFACTS).strip("/") or None


def check_path(path: str) -> str:
    """A relative path of plain names, else 404 (it names nothing that can be served)."""
    parts = path.split("/")
    if not path or not all(_SEGMENT.fullmatch(p) and ".." not in p for p in parts):
        raise ApiError(404, f"no such file: {path!r}")
    return path


@dataclass(frozen=True)
class Download:
    account: str
    path: str
    expires: int


class Downloads:
    def __init__(self, store: UploadStore) -> None:
        self.store = store

    def _signature(self, download: Download) -> str:
        return hmac_hex(
            self.store.secret, "GET", download.account, download.path, str(download.expires)
        )

    def sign(self, account: str, path: str) -> Download:
        return Download(account, check_path(path), int(time.time()) + URL_LIFETIME_S)

    def signed_path(self, download: Download) -> str:
        return (
            f"/downloads/v1/accounts/{download.account}/{quote(download.path)}"
            f"?expires={download.expires}&signature={self._signature(download)}"
        )

    def verify(self, download: Download, signature: str, now: float | None = None) -> None:
        check_signature(self._signature(download), signature, download.expires, now)

    def locate(self, account: str, path: str) -> Path:
        """The file ``path`` names in the account's artifacts; 404 outside or missing."""
        root = self.store.artifacts(account).resolve()
        target = (root / check_path(path)).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise ApiError(404, f"no such file: {path!r}")
        return target

    def files(self, account: str, path: str) -> dict[str, str]:
        """file name (relative to ``path`` when it is a directory) -> its artifact path;
        hidden entries (upload records, partial files) are left out."""
        root = self.store.artifacts(account).resolve()
        start = (root / check_path(path)).resolve()
        if not start.is_relative_to(root) or not start.exists():
            raise ApiError(412, f"the files at pvc://artifacts/{path} are not on this gateway")
        if start.is_file():
            return {start.name: path}
        found: dict[str, str] = {}
        for file in sorted(start.rglob("*")):
            relative = file.relative_to(start)
            if any(part.startswith(".") for part in relative.parts) or not file.is_file():
                continue
            if not file.resolve().is_relative_to(root):
                continue  # a symlink out of the volume is not served
            found[relative.as_posix()] = f"{path}/{relative.as_posix()}"
            if len(found) > MAX_FILES:
                raise ApiError(412, f"pvc://artifacts/{path} holds more than {MAX_FILES} files")
        return found
