"""Uploading files the way Fireworks' upload flow wants them: ask ``:getUploadEndpoint``
for one signed URL per file name, PUT each file there, then ``:validateUpload``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from .. import client
from ..client import Json

UploadEndpoint = Callable[[Mapping[str, int]], Json]


def files_to_upload(path: Path) -> dict[str, Path]:
    """File name -> file: the file itself, or a directory's top-level files.

    Names are what the server stores (base names), so a directory with subdirectories
    is refused rather than flattened; hidden files (``.gitattributes``) are skipped.
    """
    if path.is_file():
        return {path.name: path}
    if not path.is_dir():
        raise ValueError(f"{path}: no such file or directory")
    files: dict[str, Path] = {}
    for entry in sorted(path.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink() or not entry.is_file():
            raise ValueError(f"{entry}: only regular files at the top of {path} can be uploaded")
        files[entry.name] = entry
    if not files:
        raise ValueError(f"{path}: no files to upload")
    return files


def upload(files: Mapping[str, Path], endpoint: UploadEndpoint) -> None:
    """Get the signed URLs for all files in one request and PUT each file to its URL."""
    answer = endpoint({name: file.stat().st_size for name, file in files.items()})
    urls = answer.get("filenameToSignedUrls") or {}
    missing = sorted(set(files) - set(urls))
    if missing:
        raise ValueError(f"the server gave no upload URL for: {', '.join(missing)}")
    for name, file in files.items():
        client.upload_file(str(urls[name]), file)
