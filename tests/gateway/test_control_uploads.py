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
    signed = store.sign("acme", "datasets", "chat", "a.jsonl", 10)
    query = store.signed_path(signed).split("signature=")[1]
    store.verify(signed, query)
    for changed in (
        Signed("beta", "datasets", "chat", "a.jsonl", 10, signed.expires),
        Signed("acme", "models", "chat", "a.jsonl", 10, signed.expires),
        Signed("acme", "datasets", "chat", "b.jsonl", 10, signed.expires),
        Signed("acme", "datasets", "chat", "a.jsonl", 11, signed.expires),
    ):
        with pytest.raises(ApiError, match="signature does not match"):
            store.verify(changed, query)
    with pytest.raises(ApiError, match="expired"):
        store.verify(signed, query, now=signed.expires + 1)
    with pytest.raises(ApiError, match="limited to 1000 bytes"):
        store.sign("acme", "datasets", "chat", "big.jsonl", 1001)
    for bad in ("../x", ".hidden", "a/b", "dataset.jsonl"):
        with pytest.raises(ApiError):
            check_filename(bad)


def test_receive_keeps_only_complete_files_of_the_signed_size(tmp_path: Path) -> None:
    store = UploadStore(str(tmp_path / "{account}"), b"k", 1000)
    signed = store.sign("acme", "datasets", "chat", "a.jsonl", 6)
    got = asyncio.run(store.receive(signed, stream(b"abc", b"def")))
    path = tmp_path / "acme" / "uploads" / "acme" / "datasets" / "chat" / "a.jsonl"
    assert path.read_bytes() == b"abcdef"
    assert got == {"size": 6, "sha256": hashlib.sha256(b"abcdef").hexdigest()}
    assert store.sha256("acme", "datasets", "chat", "a.jsonl") == got["sha256"]
    for parts, status in (((b"abc",), 400), ((b"abcdefg",), 413)):
        short = store.sign("acme", "datasets", "chat", "b.jsonl", 6)
        with pytest.raises(ApiError) as error:
            asyncio.run(store.receive(short, stream(*parts)))
        assert error.value.status == status
    leftovers = sorted(p.name for p in path.parent.iterdir())
    assert leftovers == ["a.jsonl"], "nothing partial is kept"


def test_shards_are_joined_with_newlines_and_records_listed(tmp_path: Path) -> None:
    store = UploadStore(str(tmp_path), b"k", 1000)
    for name, data in (("1.jsonl", b'{"a":1}'), ("2.jsonl", b'{"a":2}\n')):
        signed = store.sign("acme", "datasets", "d", name, len(data))
        asyncio.run(store.receive(signed, stream(data)))
    store.write_record("acme", "datasets", "d", {"spec": {}, "files": {}})
    assert [name for name, _ in store.pending("acme", "datasets")] == ["d"]
    assert list(store.pending("acme", "models")) == []
    joined = store.combined("acme", "d", ["1.jsonl", "2.jsonl"])
    directory = store.item_dir("acme", "datasets", "d")
    assert (directory / joined).read_bytes() == b'{"a":1}\n{"a":2}\n'
    assert store.combined("acme", "d", ["1.jsonl"]) == "1.jsonl"
    store.drop_record("acme", "datasets", "d")
    assert list(store.pending("acme", "datasets")) == []


def test_receive_without_a_signed_size_stops_at_the_limit(tmp_path: Path) -> None:
    store = UploadStore(str(tmp_path), b"k", 10)
    directory = tmp_path / "d"
    got = asyncio.run(store.receive_file(directory, "a.jsonl", stream(b"12345", b"67890"), None))
    assert got["size"] == 10 and (directory / "a.jsonl").read_bytes() == b"1234567890"
    with pytest.raises(ApiError) as error:
        asyncio.run(store.receive_file(directory, "b.jsonl", stream(b"123456", b"78901"), None))
    assert error.value.status == 413 and "allowed per upload" in error.value.message
    assert sorted(p.name for p in directory.iterdir()) == ["a.jsonl"]
