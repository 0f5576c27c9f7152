"""POST /v1/load_lora_adapter is confined to the adapter roots, and its errors do not tell
a client whether a directory exists outside them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.http_support import LiveServer, live_server, openai_error, tiny_engine


@pytest.fixture
def roots(
    tmp_path: Path, tiny_adapters: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Path]:
    """An --adapter-root, a PVC root and a cache dir, each holding a copy of an adapter;
    the originals (pytest's adapters0) lie outside all of them."""
    made = {name: tmp_path / name for name in ("extra", "pvc", "cache")}
    for root in made.values():
        shutil.copytree(tiny_adapters["alpha"], root / "claim" / "adapter")
    monkeypatch.setenv("HEARTH_PVC_ROOT", str(made["pvc"]))
    monkeypatch.setenv("HEARTH_CACHE_DIR", str(made["cache"]))
    return made


@pytest.fixture
def server(tiny_dir: Path, roots: dict[str, Path]) -> Iterator[LiveServer]:
    engine = tiny_engine(tiny_dir, max_lora_rank=8)
    try:
        with live_server(engine, adapter_roots=[str(roots["extra"])]) as s:
            yield s
    finally:
        engine.shutdown()


def _load(server: LiveServer, path: str, name: str = "a") -> tuple[int, str]:
    r = server.post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": path})
    if r.status_code == 200:
        return 200, ""
    return r.status_code, openai_error(r, r.status_code, "lora_path")


def test_adapters_inside_the_roots_load(server: LiveServer, roots: dict[str, Path]) -> None:
    assert _load(server, str(roots["extra"] / "claim" / "adapter"), "extra") == (200, "")
    assert _load(server, "pvc://claim/adapter", "pvc") == (200, "")
    assert _load(server, f"file://{roots['cache']}/claim/adapter", "cache") == (200, "")
    names = {c["id"] for c in server.get("/v1/models").json()["data"]}
    assert {"extra", "pvc", "cache"} <= names


def test_outside_the_roots_reads_like_missing(
    server: LiveServer, roots: dict[str, Path], tiny_adapters: dict[str, Path], tmp_path: Path
) -> None:
    outside = tiny_adapters["alpha"]  # a real adapter directory
    link = roots["extra"] / "sneaky"
    link.symlink_to(outside)
    cases = {
        "outside, exists": str(outside),
        "outside, missing": str(outside.parent / "nothing-here"),
        "inside, missing": str(roots["extra"] / "nothing-here"),
        "dot-dot escape": f"{roots['extra']}/{os.path.relpath(outside, roots['extra'])}",
        "symlink out of a root": str(link),
        "a file, not a directory": str(outside / "adapter_config.json"),
        "system directory": "/etc",
        "file:// outside": f"file://{outside}",
        "NUL byte": f"{roots['extra']}/a\x00b",
    }
    messages = {}
    for case, path in cases.items():
        status, message = _load(server, path)
        assert status == 400, case
        messages[case] = message.replace(repr(path), "<path>")
    assert len(set(messages.values())) == 1, messages
    assert "allowed adapter roots" in next(iter(messages.values()))
    assert [c["id"] for c in server.get("/v1/models").json()["data"]] == ["tiny"]


def test_pvc_uris_cannot_escape_the_pvc_root(server: LiveServer) -> None:
    status, message = _load(server, "pvc://claim/../../etc")
    assert status == 400 and "escapes" in message


def test_startup_loras_are_trusted(tiny_dir: Path, tiny_adapters: dict[str, Path]) -> None:
    """--lora comes from whoever starts the server, not from a client: it may point
    anywhere (the roots confine only the HTTP endpoint)."""
    import asyncio

    from hearth_server.api.app import _load_startup_loras
    from hearth_server.api.metrics import Metrics
    from hearth_server.api.state import ServerState
    from tests.server.http_support import settings

    engine = tiny_engine(tiny_dir, max_lora_rank=8)
    try:
        cfg = settings(loras=[("boot", str(tiny_adapters["alpha"]))])
        state = ServerState(settings=cfg, metrics=Metrics("tiny"), engine=engine)
        asyncio.run(_load_startup_loras(state))
        assert engine.adapters.info("boot") is not None
    finally:
        engine.shutdown()
