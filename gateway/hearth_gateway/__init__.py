"""Hearth gateway: data-plane endpoint and Fireworks-style REST control plane (not built)."""
