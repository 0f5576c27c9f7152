"""Command-line parsing of ``hearth-server serve``."""

from __future__ import annotations

import pytest

from hearth_server.cli import build_parser, settings_from_args


def test_serve_flags_follow_vllm_names(monkeypatch) -> None:
    monkeypatch.setenv("POD_IP", "10.1.2.3")
    args = build_parser().parse_args(
        [
            "serve",
            "builtin://smollm2-135m-instruct",
            "--served-model-name",
            "smol",
            "--lora",
            "a=pvc://c/a",
            "--lora",
            "b=/tmp/b",
            "--max-loras",
            "2",
            "--max-cpu-loras",
            "4",
            "--max-lora-rank",
            "32",
            "--max-num-seqs",
            "8",
            "--max-model-len",
            "1024",
            "--dtype",
            "float32",
            "--port",
            "9000",
        ]
    )
    s = settings_from_args(args)
    assert s.model_name == "smol" and s.loras == [("a", "pvc://c/a"), ("b", "/tmp/b")]
    assert (s.max_loras, s.max_cpu_loras, s.max_lora_rank) == (2, 4, 32)
    assert (s.max_num_seqs, s.max_model_len, s.port) == (8, 1024, 9000)
    assert s.host == "10.1.2.3"  # the operator passes the pod IP through the environment


def test_defaults(monkeypatch) -> None:
    monkeypatch.delenv("POD_IP", raising=False)
    s = settings_from_args(build_parser().parse_args(["serve", "/models/x"]))
    assert (s.host, s.port, s.model_name, s.dtype) == ("0.0.0.0", 8000, "/models/x", "auto")
    assert s.engine_process  # the engine gets its own process unless told otherwise
    threaded = build_parser().parse_args(["serve", "/models/x", "--engine-thread"])
    assert settings_from_args(threaded).engine_process is False


@pytest.mark.parametrize(
    "argv",
    [
        ["serve"],
        ["serve", "m", "--lora", "no-equals"],
        ["serve", "m", "--max-loras", "0"],
        ["serve", "m", "--dtype", "int3"],
    ],
)
def test_bad_flags_exit_2(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
