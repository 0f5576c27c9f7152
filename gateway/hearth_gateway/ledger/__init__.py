"""The gateway's view of the usage ledger, which lives in `hearth.ledger`.

The operator writes replica time (GPU-seconds) into the same ledger, so the ledger is a
package of the shared distribution both import; the gateway keeps this name for it.
"""

from __future__ import annotations

from hearth.ledger import (
    DEFAULT_PATH,
    PATH_ENV,
    Ledger,
    LedgerClosedError,
    SqlLedger,
    UsageRecord,
    UsageTotal,
    open_ledger,
)

__all__ = [
    "DEFAULT_PATH",
    "PATH_ENV",
    "Ledger",
    "LedgerClosedError",
    "SqlLedger",
    "UsageRecord",
    "UsageTotal",
    "open_ledger",
]
