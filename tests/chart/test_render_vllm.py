"""The chart's ``vllm`` values reach the operator's settings (servingEngine VLLM pods)."""

from __future__ import annotations

import pytest
import yaml

from hearth_operator.settings import Settings, settings_from_mapping
from tests.chart.helm import CHART, NAMESPACE, find, helm, needs_helm, render, value_args

pytestmark = [needs_helm, pytest.mark.timeout(120)]


def operator_settings(sets: list[str]) -> Settings:
    config = find(render(sets=sets), "ConfigMap", "hearth-operator-config")
    return settings_from_mapping(yaml.safe_load(config["data"]["settings.yaml"]))


def test_default_vllm_settings_are_the_operators_own() -> None:
    settings = operator_settings([])
    defaults = Settings()
    assert settings.vllm_image == defaults.vllm_image
    assert settings.vllm_command == ("vllm", "serve")
    assert settings.vllm_max_num_seqs == defaults.vllm_max_num_seqs
    assert settings.vllm_env == {}


def test_vllm_image_capacity_and_env_are_configurable() -> None:
    settings = operator_settings(
        [
            "vllm.image=registry.example.com/vllm-openai:v9.9.9",
            "vllm.maxNumSeqs=64",
            "vllm.env.HF_ENDPOINT=https://hf-mirror.example.com",
        ]
    )
    assert settings.vllm_image == "registry.example.com/vllm-openai:v9.9.9"
    assert settings.vllm_max_num_seqs == 64
    assert settings.vllm_env == {"HF_ENDPOINT": "https://hf-mirror.example.com"}


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["vllm.maxNumSeqs=0"], "at '/vllm/maxNumSeqs': minimum: got 0, want 1"),
        (["vllm.image=has space"], "at '/vllm/image'"),
        (["vllm.env.bad-name=x"], "at '/vllm/env': additional properties 'bad-name' not allowed"),
    ],
)
def test_bad_vllm_values_are_refused(sets: list[str], message: str) -> None:
    template = helm(
        "template", "hearth", str(CHART), "--namespace", NAMESPACE, *value_args(sets=sets)
    )
    assert template.returncode != 0, f"helm template accepted {sets}"
    assert message in template.stderr, template.stderr
