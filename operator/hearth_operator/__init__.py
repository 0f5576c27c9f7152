"""Hearth operator: kopf handlers that reconcile hearth.dev resources (not built yet)."""
