"""Hearth's shared package: resource names, the typed resource models the CRDs are
generated from, the offline manifest validator and ``hearthctl``."""

from . import api, names

__version__ = "0.1.0"
__all__ = ["__version__", "api", "names"]
