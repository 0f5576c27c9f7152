"""Hearth gateway: the data-plane endpoint and Fireworks-style REST control plane (not built yet)."""
