"""The ``trio-scrape`` command's entry point, kept apart from everything it imports.

A Ctrl-C can come while the CLI is still importing the engine (a few hundred milliseconds);
Python then raises KeyboardInterrupt wherever it is. Importing the CLI inside this ``try``
(``import trio_scrape`` itself imports nothing else) turns that into exit code 130 and one
line, as a Ctrl-C during the crawl gives, instead of a traceback.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run ``trio-scrape``; exits with its code (130 after a Ctrl-C during start-up)."""
    try:
        from ._cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        sys.stderr.write("trio-scrape: interrupted\n")
        sys.exit(130)
