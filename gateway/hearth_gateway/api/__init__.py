"""HTTP routes, one module per API; each is served under ``/`` and ``/inference``."""
