"""Hearth model server: a vLLM-style OpenAI/Anthropic-compatible server with multi-LoRA batching."""
