"""``python -m robustart`` runs the command line."""

import sys

from robustart.main import cli_main

sys.exit(cli_main())
