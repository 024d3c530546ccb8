"""The ``robustart`` console entry point (``[project.scripts]``; also ``python -m robustart``).

The subcommands live in :mod:`robustart.cli`, one module each: ``fit``, ``validate``, ``test``
and ``predict`` (:mod:`robustart.cli.lightning`), ``compare``, ``transfer``, ``shift`` and
``benchmark``. ``robustart --help`` lists them. Errors caused by input are printed as one
``robustart: error: ...`` line with exit status 2, without a traceback.
"""

from __future__ import annotations

import sys


def cli_main(args: list[str] | None = None) -> int:
    """Run the ``robustart`` command line.

    Args:
        args: The arguments after ``robustart`` (``None``: ``sys.argv[1:]``).

    Returns:
        The exit status, 0 on success (input errors raise ``SystemExit(2)``).
    """
    from robustart.cli import main

    return main(list(sys.argv[1:] if args is None else args))


if __name__ == "__main__":
    sys.exit(cli_main())
