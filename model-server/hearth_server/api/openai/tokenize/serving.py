"""Logic of /tokenize and /detokenize."""

from __future__ import annotations

from typing import Any

from jinja2 import TemplateError

from hearth_server.api.errors import ErrorResponse, bad_request
from hearth_server.api.generation import resolve_target
from hearth_server.api.openai.tokenize.protocol import DetokenizeRequest, TokenizeRequest
from hearth_server.api.state import ServerState


def _ids(tok: Any, req: TokenizeRequest) -> list[int]:
    if req.messages is not None:
        conv = [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in req.messages
        ]
        ids = tok.apply_chat_template(
            conv, add_generation_prompt=req.add_generation_prompt, tokenize=True
        )
        if isinstance(ids, dict):  # some tokenizers return a BatchEncoding
            ids = ids["input_ids"]
    else:
        ids = tok(req.prompt, add_special_tokens=req.add_special_tokens)["input_ids"]
    return list(ids)


async def tokenize(state: ServerState, req: TokenizeRequest) -> ErrorResponse | dict[str, Any]:
    target = resolve_target(state, req.model)
    if isinstance(target, ErrorResponse):
        return target
    try:
        ids = await state.off_loop(_ids, state.tokenizer, req)
    except (ValueError, TemplateError) as exc:
        return bad_request(f"the chat template refused these messages: {exc}", "messages")
    return {"tokens": ids, "count": len(ids), "max_model_len": state.max_model_len}


def detokenize(state: ServerState, req: DetokenizeRequest) -> ErrorResponse | dict[str, Any]:
    target = resolve_target(state, req.model)
    if isinstance(target, ErrorResponse):
        return target
    vocab = len(state.tokenizer)
    bad = [t for t in req.tokens if t < 0 or t >= vocab]
    if bad:
        return bad_request(f"token ids must be in [0, {vocab}); got {bad[:5]}", "tokens")
    return {"prompt": state.tokenizer.decode(req.tokens)}
