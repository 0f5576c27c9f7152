"""Anthropic-compatible endpoints."""
