"""Open a dataset URI as a stream of text lines.

Accepted URIs: a local path, ``file:///abs/path``, ``pvc://claim/path`` (under
``$HEARTH_PVC_ROOT``, default ``/mnt/pvc``, the account's artifact volume mounted in
the pod), ``https://...`` and ``s3://bucket/key``. A ConfigMap dataset reaches the
trainer as a mounted file, so it is a local path here.

Pure standard library (boto3 only for s3://, imported on use), so validation stays fast.
"""

from __future__ import annotations

import io
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

#: Seconds to wait for a remote source before giving up with a clear error.
REMOTE_TIMEOUT_S = 30.0


class DatasetSourceError(Exception):
    """The dataset could not be read at all; the message names the URI and the reason."""


def pvc_root() -> Path:
    return Path(os.environ.get("HEARTH_PVC_ROOT", "/mnt/pvc"))


def local_path(uri: str) -> Path | None:
    """The file a local/file:// /pvc:// URI points at, or None for remote schemes."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return Path(uri).expanduser()
    if scheme == "file":
        return Path(rest).expanduser()
    if scheme == "pvc":
        claim, _, sub = rest.partition("/")
        if not claim or not sub:
            raise DatasetSourceError(f"{uri!r}: expected pvc://<claim>/<path>")
        root = pvc_root().resolve()
        path = (root / claim / sub).resolve()
        if not path.is_relative_to(root):
            raise DatasetSourceError(f"{uri!r} escapes the PVC mount root {str(root)!r}")
        return path
    if scheme in ("https", "http", "s3"):
        return None
    raise DatasetSourceError(
        f"unsupported dataset URI scheme {scheme!r} in {uri!r}; "
        "use a local path, file://, pvc://, https:// or s3://"
    )


def open_lines(uri: str) -> Iterator[str]:
    """Yield the lines of the dataset (without trailing newlines), streaming."""
    if not uri or not uri.strip():
        raise DatasetSourceError("empty dataset URI")
    path = local_path(uri)
    if path is not None:
        yield from _local_lines(path, uri)
        return
    scheme = uri.partition("://")[0]
    stream = _open_https(uri) if scheme in ("https", "http") else _open_s3(uri)
    with stream:
        for raw in io.TextIOWrapper(stream, encoding="utf-8", errors="strict"):  # type: ignore[type-var]
            yield raw.rstrip("\r\n")


def _local_lines(path: Path, uri: str) -> Iterator[str]:
    if not path.exists():
        raise DatasetSourceError(f"dataset {uri!r}: file {str(path)!r} does not exist")
    if not path.is_file():
        raise DatasetSourceError(f"dataset {uri!r}: {str(path)!r} is not a regular file")
    try:
        with path.open(encoding="utf-8") as fh:
            for raw in fh:
                yield raw.rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise DatasetSourceError(f"dataset {uri!r} is not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise DatasetSourceError(f"cannot read dataset {uri!r}: {exc}") from exc


def _open_https(uri: str) -> io.BufferedIOBase:
    try:
        resp = urllib.request.urlopen(uri, timeout=REMOTE_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        raise DatasetSourceError(f"dataset {uri!r}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DatasetSourceError(
            f"cannot download dataset {uri!r}: {reason} (is the host reachable from this pod?)"
        ) from exc
    stream: io.BufferedIOBase = resp
    return stream


def _open_s3(uri: str) -> io.BufferedIOBase:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise DatasetSourceError(f"{uri!r}: expected s3://<bucket>/<key>")
    try:
        import boto3  # type: ignore[import-not-found,unused-ignore]  # optional: s3:// only
    except ImportError as exc:
        raise DatasetSourceError(
            f"dataset {uri!r}: s3:// sources need the boto3 package (pip install boto3)"
        ) from exc
    try:
        # Credentials come from the usual AWS chain (env, IRSA web identity, instance role);
        # AWS_ENDPOINT_URL selects S3-compatible stores such as MinIO.
        client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
    except Exception as exc:  # botocore raises many unrelated types
        raise DatasetSourceError(
            f"cannot read dataset {uri!r} from S3: {type(exc).__name__}: {exc}"
        ) from exc
    stream: io.BufferedIOBase = body
    return stream
