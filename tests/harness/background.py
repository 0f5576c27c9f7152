"""Moved to :mod:`hearth.local.background`; re-exported for the tests that import it here."""

from hearth.local.background import BackgroundLoop

__all__ = ["BackgroundLoop"]
