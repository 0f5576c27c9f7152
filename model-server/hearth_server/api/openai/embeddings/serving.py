"""Logic of POST /v1/embeddings: returns values, never raises HTTP errors.

The vectors are computed by the engine thread (see engine/embeddings.py for the pooling
and for why); this module validates, tokenizes, waits for the job and encodes.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import torch

from hearth_server.api.errors import ErrorResponse, bad_request, error
from hearth_server.api.generation import resolve_target
from hearth_server.api.openai.embeddings.protocol import EmbeddingRequest
from hearth_server.api.state import ServerState
from hearth_server.engine.embeddings import EmbeddingJob, truncate
from hearth_server.engine.engine import EngineDead

# Bounds of one request: OpenAI's input count, and a token total that keeps one request
# to a few seconds of engine time on a CPU.
MAX_INPUTS = 2048
MAX_TOTAL_TOKENS = 32768


def tokenize_inputs(
    tok: Any, inputs: list[str | list[int]], vocab: int, max_len: int
) -> list[list[int]] | ErrorResponse:
    """Token ids per input; 400 naming ``input`` (or ``input.i``) for what cannot run."""
    out: list[list[int]] = []
    for i, value in enumerate(inputs):
        where = "input" if len(inputs) == 1 else f"input.{i}"
        ids = list(tok(value)["input_ids"]) if isinstance(value, str) else list(value)
        if not ids:
            return bad_request("input must not be empty (it has no tokens)", where)
        bad = next((t for t in ids if not 0 <= t < vocab), None)
        if bad is not None:
            return bad_request(f"token id {bad} is outside the vocabulary [0, {vocab})", where)
        if len(ids) > max_len:
            return bad_request(
                f"input is {len(ids)} tokens, more than this model's context of {max_len}",
                where,
            )
        out.append(ids)
    total = sum(map(len, out))
    if total > MAX_TOTAL_TOKENS:
        return bad_request(
            f"the inputs are {total} tokens in all, more than {MAX_TOTAL_TOKENS} per "
            "request; split the request",
            "input",
        )
    return out


def encode(vector: torch.Tensor, encoding_format: str) -> list[float] | str:
    """A float list, or base64 of the little-endian float32 bytes (OpenAI's format)."""
    if encoding_format == "base64":
        raw = vector.numpy().astype("<f4", copy=False).tobytes()
        return base64.b64encode(raw).decode("ascii")
    values: list[float] = vector.tolist()
    return values


async def run_job(state: ServerState, inputs: list[list[int]]) -> torch.Tensor | ErrorResponse:
    """Hand ``inputs`` to the engine thread and wait for its vectors. If the client
    goes away meanwhile, the job is dropped at its next micro-batch."""
    engine = state.engine
    assert engine is not None
    loop = asyncio.get_running_loop()
    done: asyncio.Future[torch.Tensor] = loop.create_future()

    def settle(vectors: torch.Tensor | None, why: str | None) -> None:
        if done.done():
            return
        if vectors is None:
            done.set_exception(RuntimeError(why or "embedding failed"))
        else:
            done.set_result(vectors)

    def deliver(vectors: torch.Tensor | None, why: str | None) -> None:
        loop.call_soon_threadsafe(settle, vectors, why)

    job = EmbeddingJob(inputs, deliver)
    try:
        engine.submit_embedding(job)
    except EngineDead as exc:
        return error(503, str(exc))
    try:
        return await done
    except asyncio.CancelledError:
        engine.cancel_embedding(job)
        raise
    except RuntimeError as exc:
        return error(500, str(exc))


async def create_embeddings(
    state: ServerState, req: EmbeddingRequest
) -> ErrorResponse | dict[str, Any]:
    target = resolve_target(state, req.model)
    if isinstance(target, ErrorResponse):
        return target
    if target is not None:
        return bad_request(
            f"{target!r} is a LoRA adapter; embeddings come from the base model only", "model"
        )
    assert state.engine is not None
    hidden = state.engine.hidden_size
    if req.dimensions is not None and req.dimensions > hidden:
        return bad_request(
            f"dimensions must be at most {hidden} (this model's hidden size), got {req.dimensions}",
            "dimensions",
        )
    inputs = req.inputs()
    if len(inputs) > MAX_INPUTS:
        return bad_request(
            f"input has {len(inputs)} entries, more than {MAX_INPUTS} per request", "input"
        )
    vocab = state.engine.vocab_size
    ids = await state.off_loop(tokenize_inputs, state.tokenizer, inputs, vocab, state.max_model_len)
    if isinstance(ids, ErrorResponse):
        return ids
    vectors = await run_job(state, ids)
    if isinstance(vectors, ErrorResponse):
        return vectors
    vectors = truncate(vectors, req.dimensions)
    tokens = sum(map(len, ids))
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(v, req.encoding_format)}
            for i, v in enumerate(vectors)
        ],
        "model": req.model or state.settings.model_name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
