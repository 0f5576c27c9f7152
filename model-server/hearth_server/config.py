"""Server settings, filled from the command line (or directly by tests)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class ServerSettings:
    model: str
    served_model_name: str | None = None
    loras: list[tuple[str, str]] = field(default_factory=list)  # (name, uri)
    max_loras: int = 4
    max_cpu_loras: int = 8
    max_lora_rank: int = 16
    max_num_seqs: int = 16
    max_model_len: int | None = None  # default: min(model's context, 4096)
    max_num_batched_tokens: int = 256
    kv_cache_tokens: int = 65536
    max_waiting: int = 256
    dtype: str = "auto"
    device: str = "auto"  # "auto": cuda when available, else cpu
    host: str = field(default_factory=lambda: os.environ.get("POD_IP", "0.0.0.0"))
    port: int = 8000

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model
