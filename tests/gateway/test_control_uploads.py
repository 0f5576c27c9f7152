"""Signed upload URLs and streamed, size-checked, checksummed files (real files)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from hearth_gateway.control.errors import ApiError
from hearth_gateway.control.uploads import Signed, UploadStore, check_filename


async def stream(*parts: bytes):
    for part in parts:
        yield part


def test_signatures_cover_every_field_and_expire(tmp_path: Path) -> None:
    store = UploadStore(str(tmp_path), b"secret", 1000)
    signed = store.sign("acme", "chat", "a.jsonl", 10)
    query = store.signed_path(signed).split("signature=")[1]
    store.verify(signed, query)
    for changed in (
        Signed("beta", "chat", "a.jsonl", 10, signed.expires),
        Signed("acme", "chat", "b.jsonl", 10, signed.expires),
        Signed("acme", "chat", "a.jsonl", 11, signed.expires),
    ):
        with pytest.raises(ApiError, match="signature does not match"):
            store.verify(changed, query)
    with pytest.raises(ApiError, match="expired"):
        store.verify(signed, query, now=signed.expires + 1)
    with pytest.raises(ApiError, match="limited to 1000 bytes"):
        store.sign("acme", "chat", "big.jsonl", 1001)
    for bad in ("../x", ".hidden", "a/b", "dataset.jsonl"):
        with pytest.raises(ApiError):
            check_filename(bad)


def test_receive_keeps_only_complete_files_of_the_signed_size(tmp_path: Path) -> None:
    store = UploadStore(str(tmp_path / "{account}"), b"k", 1000)
    signed = store.sign("acme", "chat", "a.jsonl", 6)
    got = asyncio.run(store.receive(signed, stream(b"abc", b"def")))
    path = tmp_path / "acme" / "uploads" / "acme" / "datasets" / "chat" / "a.jsonl"
    assert path.read_bytes() == b"abcdef"
    assert got == {"size": 6, "sha256": hashlib.sha256(b"abcdef").hexdigest()}
    assert store.sha256("acme", "chat", "a.jsonl") == got["sha256"]
    for parts, status in (((b"abc",), 400), ((b"abcdefg",), 413)):
        short = store.sign("acme", "chat", "b.jsonl", 6)
        with pytest.raises(ApiError) as error:
            asyncio.run(store.receive(short, stream(*parts)))
        assert error.value.status == status
    leftovers = sorted(p.name for p in path.parent.iterdir())
    assert leftovers == ["a.jsonl"], "nothing partial is kept"


def test_shards_are_joined_with_newlines_and_records_listed(tmp_path: Path) -> None:
    store = UploadStore(str(tmp_path), b"k", 1000)
    for name, data in (("1.jsonl", b'{"a":1}'), ("2.jsonl", b'{"a":2}\n')):
        asyncio.run(store.receive(store.sign("acme", "d", name, len(data)), stream(data)))
    store.write_record("acme", "d", {"spec": {}, "files": {}})
    assert [name for name, _ in store.pending("acme")] == ["d"]
    joined = store.combined("acme", "d", ["1.jsonl", "2.jsonl"])
    assert (store.dataset_dir("acme", "d") / joined).read_bytes() == b'{"a":1}\n{"a":2}\n'
    assert store.combined("acme", "d", ["1.jsonl"]) == "1.jsonl"
    store.drop_record("acme", "d")
    assert list(store.pending("acme")) == []
