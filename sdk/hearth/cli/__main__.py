"""``python -m hearth.cli``: the same as ``hearthctl``."""

from hearth.cli import main

raise SystemExit(main())
