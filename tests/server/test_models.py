"""Model/adapter URI resolution and the builtin cache (no model is loaded here)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from hearth_server.models import ModelResolutionError, builtin, resolve_model


def _hf_dir(path: Path, marker: str = "config.json") -> Path:
    path.mkdir(parents=True)
    (path / marker).write_text("{}")
    return path


def test_local_and_file_uris(tmp_path: Path) -> None:
    d = _hf_dir(tmp_path / "m")
    assert resolve_model(str(d)).path == d
    got = resolve_model(f"file://{d}")
    assert got.path == d and got.source == "local"


def test_pvc_uri_resolves_under_the_mount_root(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HEARTH_PVC_ROOT", str(tmp_path))
    d = _hf_dir(tmp_path / "claim" / "loras" / "a", "adapter_config.json")
    got = resolve_model("pvc://claim/loras/a", "adapter")
    assert got.path == d and got.source == "pvc"
    with pytest.raises(ModelResolutionError, match="escapes"):
        resolve_model("pvc://claim/../../etc", "adapter")
    with pytest.raises(ModelResolutionError, match="pvc://<claim>"):
        resolve_model("pvc:///x")


def test_missing_dirs_and_markers_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelResolutionError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))
    d = _hf_dir(tmp_path / "m")
    with pytest.raises(ModelResolutionError, match=r"adapter_config\.json missing"):
        resolve_model(str(d), "adapter")
    with pytest.raises(ModelResolutionError, match="unsupported URI scheme"):
        resolve_model("s3://bucket/model")
    with pytest.raises(ModelResolutionError, match="empty"):
        resolve_model(" ")


def test_hf_uri_offline_fails_clearly(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HEARTH_CACHE_DIR", str(tmp_path))
    with pytest.raises(
        ModelResolutionError, match=r"could not download .hf://org/repo@v1.*OFFLINE"
    ):
        resolve_model("hf://org/repo@v1")
    with pytest.raises(ModelResolutionError, match="hf://<org>/<repo>"):
        resolve_model("hf://just-a-name")


def test_builtin_unknown_name_and_adapter_kind() -> None:
    with pytest.raises(ModelResolutionError, match="unknown builtin"):
        resolve_model("builtin://gpt-9")
    with pytest.raises(ModelResolutionError, match="not an adapter"):
        resolve_model("builtin://smollm2-135m-instruct", "adapter")


def test_builtin_cache_is_written_atomically_once(tmp_path: Path, monkeypatch) -> None:
    """Two processes (here threads) converting at once both end up with a complete
    directory and never see a partial one."""
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(builtin, "gguf_path", lambda name: gguf)
    calls: list[Path] = []
    barrier = threading.Barrier(2)

    def fake_convert(src: Path, out: Path) -> None:
        calls.append(out)
        barrier.wait(timeout=10)  # both are mid-conversion at the same time
        (out / "model.safetensors").write_bytes(b"weights")
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(builtin, "_convert", fake_convert)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(builtin.materialize("x", tmp_path)[0]))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert len(calls) == 2 and len(set(results)) == 1
    final = results[0]
    assert (final / "config.json").is_file() and (final / "model.safetensors").is_file()
    assert [p.name for p in final.parent.iterdir()] == [final.name]  # no temp dirs left
    path, note = builtin.materialize("x", tmp_path)
    assert path == final and note.startswith("cached") and len(calls) == 2
