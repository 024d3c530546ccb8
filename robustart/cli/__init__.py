"""The ``robustart`` command line: one module per subcommand."""
