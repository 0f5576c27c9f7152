"""Wire types of /v1/models and the LoRA load/unload endpoints."""

from __future__ import annotations

from pydantic import Field

from hearth_server.api.openai.protocol import OpenAIBaseModel
from hearth_server.api.validation import Text


class LoadLoRAAdapterRequest(OpenAIBaseModel):
    lora_name: Text = Field(min_length=1, max_length=256)
    lora_path: Text = Field(min_length=1)


class UnloadLoRAAdapterRequest(OpenAIBaseModel):
    lora_name: Text = Field(min_length=1, max_length=256)
