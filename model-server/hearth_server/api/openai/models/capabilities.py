"""What a served model can do, in the capability fields of Fireworks' GET /v1/models.

Fireworks' cards carry ``kind``, ``supports_chat``, ``supports_image_input``,
``supports_tools`` and ``context_length``; Hearth adds ``supports_response_schema``
(structured output) and ``supports_embeddings`` (POST /v1/embeddings).
"""

from __future__ import annotations

from typing import Any

BASE_KIND = "HF_BASE_MODEL"
ADAPTER_KIND = "HF_PEFT_ADDON"


def capabilities(tokenizer: Any, context_length: int | None, adapter: bool) -> dict[str, Any]:
    """The capability fields of one card. Chat (and with it tools, which are prompted
    through the chat template) needs a chat template; structured output is decoding,
    so every model has it; embeddings come from the base model only."""
    chat = bool(getattr(tokenizer, "chat_template", None)) if tokenizer is not None else False
    return {
        "kind": ADAPTER_KIND if adapter else BASE_KIND,
        "context_length": context_length,
        "supports_chat": chat,
        "supports_tools": chat,
        "supports_image_input": False,
        "supports_response_schema": True,
        "supports_embeddings": not adapter,
    }
