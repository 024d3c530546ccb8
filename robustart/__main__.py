"""``python -m robustart`` runs the command line."""

from robustart.main import cli_main

cli_main()
