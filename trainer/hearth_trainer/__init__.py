"""Hearth trainer: LoRA supervised fine-tuning that writes PEFT adapters hearth-server loads (not built yet)."""
