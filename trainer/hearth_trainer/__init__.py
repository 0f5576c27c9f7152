"""Hearth trainer: LoRA supervised fine-tuning that writes PEFT adapters hearth-server loads.

Modules: ``sources`` (dataset URIs), ``datasets`` (read a dataset URI and
validate it with the torch-free rules in ``hearth.datasets``),
``tokenization`` (token ids and loss masks), ``batching`` (length-grouped token-budget
batches), ``train`` (the LoRA loop), ``checkpoint`` (resume and atomic publication),
``reporting`` (progress to a file and to the FineTuningJob status), ``cli``.
"""
