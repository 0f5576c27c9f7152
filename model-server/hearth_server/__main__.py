"""``python -m hearth_server serve MODEL`` (same as the ``hearth-server`` script)."""

import sys

from hearth_server.cli import main

sys.exit(main())
