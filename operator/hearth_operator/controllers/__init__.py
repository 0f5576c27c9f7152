"""Reconcilers, one module per kind: read what is observed, plan, apply, write status."""
