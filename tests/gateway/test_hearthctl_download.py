"""hearthctl download: where a file the server names is written (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hearth.cli import build_parser
from hearth.cli.downloads import target


def test_files_land_inside_the_directory_whatever_the_server_names(tmp_path: Path) -> None:
    assert target(tmp_path, "adapter_config.json") == tmp_path / "adapter_config.json"
    assert target(tmp_path, "sub/model.safetensors") == tmp_path / "sub" / "model.safetensors"
    for bad in ("../x", "a/../../x", "/etc/passwd", ""):
        with pytest.raises(ValueError, match="outside the directory"):
            target(tmp_path, bad)


def test_download_is_a_verb_of_models_and_datasets_in_both_grammars() -> None:
    args = build_parser().parse_args(["download", "model", "pirate", "out"])
    assert (args.noun_name, args.name, args.directory) == ("model", "pirate", "out")
    args = build_parser().parse_args(["download", "datasets", "chat", "out"])
    assert args.noun_name == "dataset"
