"""Server settings, filled from the command line (or directly by tests)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# The operator passes each Deployment's API token to its server pods in this variable
# (from a Secret), so it never shows in the pod spec or in `ps`.
API_KEY_ENV = "HEARTH_SERVER_API_KEY"

# Request bodies above this many bytes get a 413. A full 4096-token context is ~16 KB
# of text; 4 MiB leaves room for long contexts and token-id prompts without letting a
# client make the server buffer arbitrary amounts of memory.
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024


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
    # Prompt tokens whose KV is kept for reuse by later requests (0: no prefix cache).
    prefix_cache_tokens: int = 8192
    max_waiting: int = 256
    dtype: str = "auto"
    # auto (as dtype), fp32, fp16, bf16 or int8 (CPU only); see models/loading.py
    precision: str = "auto"
    device: str = "auto"  # "auto": cuda when available, else cpu
    host: str = field(default_factory=lambda: os.environ.get("POD_IP", "0.0.0.0"))
    port: int = 8000
    # Every route but /health and /metrics requires this token when it is set.
    api_key: str | None = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    # Directories POST /v1/load_lora_adapter may read from, besides the defaults
    # (the hearth cache, the PVC mount root and the base model's directory).
    adapter_roots: list[str] = field(default_factory=list)
    # After the engine dies: seconds to let in-flight responses finish before the
    # process exits non-zero (so Kubernetes restarts it). None: stay up (tests).
    engine_failure_exit_delay: float | None = None
    # Run the engine in its own process (engine_process/), off the HTTP side's GIL;
    # False: a thread of the server process (tests hand an Engine to build_app directly).
    engine_process: bool = True
    # CPU threads of the engine's torch kernels; None: the CPUs this process may use
    # (affinity, capped by its cgroup's CPU quota; see cpu_threads.py).
    threads: int | None = None

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model
