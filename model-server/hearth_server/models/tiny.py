"""A tiny randomly initialised Llama and its tokenizer, built in about a second.

Two layers, hidden size 64, a 400-token byte-level BPE trained on a few lines: its output
is noise, but it exercises every piece of the serving machinery (batching, LoRA, the KV
cache, streaming) with no weights to download. The tests and the gateway benchmark build
it; nothing in serving depends on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: The tokenizer's training text (also handy as prompts the vocabulary covers well).
CORPUS = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "Robots learn to paint with bright colours and patient hands.",
    "def add(a, b): return a + b  # small python functions are everywhere",
    "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich. 日本語のテキスト",
    "Hello world! How are you today? I am fine, thank you very much.",
]


def build_tiny_model_dir(path: Path) -> Path:
    """Write the tiny model (weights, config, tokenizer) into ``path``; return it."""
    import torch
    import transformers
    from tokenizers import (  # type: ignore[import-untyped]
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        trainers,
    )

    hf: Any = transformers  # untyped constructors
    LlamaConfig, LlamaForCausalLM = hf.LlamaConfig, hf.LlamaForCausalLM
    PreTrainedTokenizerFast = hf.PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=0.2,  # spread logits so greedy decoding rarely meets ties
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = fast.eos_token_id
    model.save_pretrained(path)
    return path
