"""Checkpoints (resume after a pod restart) and the atomic publication of the adapter.

Layout of the output directory::

    adapter/              the published PEFT adapter (appears complete or not at all)
    checkpoints/step-N/   trainable weights, optimizer, scheduler, RNG, data position
    checkpoints/latest    name of the newest complete checkpoint
    metrics.jsonl         one line per optimizer step (plus eval results)
    result.json           written last; its presence means the run finished

Everything is written into a temporary sibling directory and renamed into place:
``rename`` is atomic on one filesystem, so a crash (OOM kill, node loss) leaves either
the previous state or the new one, never a half-written file under a final name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ADAPTER_DIR = "adapter"
CHECKPOINT_DIR = "checkpoints"
RESULT_FILE = "result.json"
METRICS_FILE = "metrics.jsonl"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_dir_atomically(final: Path, fill: Callable[[Path], None]) -> None:
    """Call ``fill(tmp)`` on a fresh temporary directory next to ``final``, then move it
    to ``final`` (replacing an older one). Nothing appears under ``final`` on failure."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        fill(tmp)
        for f in tmp.iterdir():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        old: Path | None = None
        if final.exists():
            # rename() cannot replace a non-empty directory: move the old one aside first.
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.rename(final, old)
        os.rename(tmp, final)
        _fsync_dir(final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json_atomically(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def clean_stale_temporaries(output: Path) -> None:
    """Remove temporary directories a crashed earlier attempt left behind."""
    for parent in (output, output / CHECKPOINT_DIR):
        if parent.is_dir():
            for p in parent.glob(".*.tmp-*"):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)


def save_checkpoint(output: Path, step: int, write: Callable[[Path], None], keep: int) -> Path:
    root = output / CHECKPOINT_DIR
    final = root / f"step-{step:08d}"
    write_dir_atomically(final, write)
    # The pointer moves only after the checkpoint is complete.
    pointer = root / "latest"
    tmp = root / f".latest.tmp-{os.getpid()}"
    tmp.write_text(final.name + "\n")
    os.replace(tmp, pointer)
    for old in sorted(root.glob("step-*"))[:-keep]:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(output: Path) -> Path | None:
    root = output / CHECKPOINT_DIR
    pointer = root / "latest"
    if pointer.is_file():
        candidate = root / pointer.read_text().strip()
        if (candidate / "state.json").is_file():
            return candidate
    # Pointer missing (crash between rename and pointer update): newest complete one.
    complete = [p for p in sorted(root.glob("step-*")) if (p / "state.json").is_file()]
    return complete[-1] if complete else None
