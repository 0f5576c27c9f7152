"""The checks of uploaded model files (real files: the tiny Llama and PEFT adapters of it)
and the streamed multipart parser of ``datasets:upload``."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hearth_gateway.control.errors import ApiError
from hearth_gateway.control.model_files import check_adapter, check_base_model
from hearth_gateway.control.multipart import form_file

pytest.importorskip("torch")
from hearth_server.models.tiny import build_tiny_model_dir
from tests.server.conftest import make_adapter


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "tiny")


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def copy(source: Path, target: Path, *, leave_out: tuple[str, ...] = ()) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*leave_out))
    return target


def refusal(call: object, status: int) -> str:
    with pytest.raises(ApiError) as error:
        assert callable(call)
        call()
    assert error.value.status == status, error.value.message
    return error.value.message


def test_a_base_model_needs_config_weights_and_tokenizer(tiny: Path, tmp_path: Path) -> None:
    assert check_base_model(tiny, names(tiny), config_only=False, skip_config=False) == []
    no_tokenizer = copy(tiny, tmp_path / "a", leave_out=("tokenizer.json",))
    message = refusal(
        lambda: check_base_model(
            no_tokenizer, names(no_tokenizer), config_only=False, skip_config=False
        ),
        412,
    )
    assert "tokenizer" in message
    # configOnly: the config is enough.
    assert (
        check_base_model(no_tokenizer, ["config.json"], config_only=True, skip_config=False) == []
    )
    odd = copy(tiny, tmp_path / "b")
    config = json.loads((odd / "config.json").read_text())
    del config["model_type"]
    (odd / "config.json").write_text(json.dumps(config))
    assert "model_type" in refusal(
        lambda: check_base_model(odd, names(odd), config_only=False, skip_config=False), 400
    )
    assert check_base_model(odd, names(odd), config_only=False, skip_config=True) == []
    (odd / "pytorch_model.bin").write_bytes(b"x")
    assert "pytorch_model.bin" in refusal(
        lambda: check_base_model(odd, names(odd), config_only=False, skip_config=True), 400
    )
    (odd / "model.safetensors").write_bytes(b"\xff" * 8 + b"{}")
    (odd / "pytorch_model.bin").unlink()
    assert "safetensors" in refusal(
        lambda: check_base_model(odd, names(odd), config_only=False, skip_config=True), 400
    )


def test_an_adapter_is_checked_against_its_rank_and_the_base(tiny: Path, tmp_path: Path) -> None:
    adapter = make_adapter(tiny, tmp_path / "lora", seed=1, rank=4)
    base_config = json.loads((tiny / "config.json").read_text())
    assert check_adapter(adapter, names(adapter), 4, base_config) == []
    # Without the base's config the sizes cannot be checked: a warning, not a refusal.
    assert check_adapter(adapter, names(adapter), 4, None) != []
    assert "r is 4" in refusal(lambda: check_adapter(adapter, names(adapter), 8, None), 400)
    bigger = dict(base_config, hidden_size=base_config["hidden_size"] * 2)
    bigger["intermediate_size"] = base_config["intermediate_size"] * 2
    assert "does not fit the base model" in refusal(
        lambda: check_adapter(adapter, names(adapter), 4, bigger), 400
    )
    config_only = copy(adapter, tmp_path / "c", leave_out=("adapter_model.safetensors",))
    assert "adapter_model.safetensors" in refusal(
        lambda: check_adapter(config_only, names(config_only), 4, None), 412
    )
    prefix = copy(adapter, tmp_path / "d")
    settings = json.loads((prefix / "adapter_config.json").read_text())
    (prefix / "adapter_config.json").write_text(json.dumps(dict(settings, peft_type="IA3")))
    assert "IA3" in refusal(lambda: check_adapter(prefix, names(prefix), 4, None), 400)
    (prefix / "adapter_config.json").write_text("{not json")
    assert "not valid JSON" in refusal(lambda: check_adapter(prefix, names(prefix), 4, None), 400)


def multipart_body(content: bytes) -> tuple[str, bytes]:
    request = httpx.Request(
        "POST",
        "http://x/",
        data={"purpose": "fine-tune"},
        files={"file": ("chat.jsonl", content, "application/jsonl")},
    )
    return request.headers["content-type"], request.read()


async def collect(content_type: str, body: bytes, size: int) -> tuple[str, bytes]:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), size):
            yield body[start : start + size]

    filename, contents = await form_file(content_type, chunks())
    return filename, b"".join([part async for part in contents])


@pytest.mark.parametrize("size", [1, 7, 64, 1 << 20])
def test_the_file_part_streams_whatever_the_chunking(size: int) -> None:
    content = b"".join(b'{"n": %d}\r\n--not-a-boundary\r\n' % i for i in range(300))
    content_type, body = multipart_body(content)
    assert asyncio.run(collect(content_type, body, size)) == ("chat.jsonl", content)


def test_a_body_cut_inside_the_file_is_refused() -> None:
    content_type, body = multipart_body(b"x" * 5000)
    with pytest.raises(ApiError, match="ended inside the file part"):
        asyncio.run(collect(content_type, body[:3000], 512))
