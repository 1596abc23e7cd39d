"""The ``trio-scrape`` command's entry point, kept apart from everything it imports.

A Ctrl-C can come while the CLI is still importing the engine (a few hundred milliseconds);
Python then raises KeyboardInterrupt wherever it is. Importing the CLI inside this ``try``
(``import trio_scrape`` itself imports nothing else) turns that into exit code 130 and one
line, as a Ctrl-C during the crawl gives, instead of a traceback.
"""

from __future__ import annotations

# SIGINT is held back from the first line: what this module imports takes milliseconds (more
# on a loaded machine), and a Ctrl-C in them would end the process with a traceback. The C
# module costs nothing to import; main() lifts the mask once the CLI is imported.
try:
    import _signal  # type: ignore[import-not-found]  # the C module behind signal; no stub

    _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGINT})
    _BLOCKED_AT_IMPORT = True
except (ImportError, AttributeError, OSError):  # no POSIX signal masks (Windows)
    _BLOCKED_AT_IMPORT = False

import gc
import os
import signal
import sys

TYPE_CHECKING = False  # not typing's: importing typing costs milliseconds (see __init__)
if TYPE_CHECKING:
    from typing import NoReturn


def main() -> None:
    """Run ``trio-scrape``; exits with its code (130 after a Ctrl-C during start-up)."""
    # SIGINT is held back while the CLI imports: a KeyboardInterrupt raised inside an
    # extension module's initialisation or the import machinery could end the process by the
    # signal (exit -2) instead of reaching the handler below. One that came meanwhile is
    # delivered when the mask is lifted, inside the try.
    blocked = _BLOCKED_AT_IMPORT or _block_sigint()
    try:
        # The imports make objects that live as long as the process (~33,000 the collector
        # tracks); it would walk them in its passes meanwhile (76 passes, ~8 ms of a start)
        # and again in every full pass of the crawl. It is paused for the imports, and what
        # they made is set aside (frozen) for the rest of the process.
        gc.disable()
        try:
            from .app import main as cli_main
        finally:
            gc.enable()
        gc.freeze()

        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            blocked = False
        cli_main()
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit as exit:
        if exit.code == 130:
            # Interrupted, and everything is written and closed. Through the interpreter's
            # shutdown such a run ended by the signal (-2) instead of with our code about once
            # in five (test_startup's 0.2 s case), even after our handler had run; most likely
            # CPython's "unhandled KeyboardInterrupt" flag, which an interrupt surfacing
            # through a C extension's nested call can leave set. Exiting here skips that.
            _exit_now(130)
        # An exit code (not a message for the interpreter to print): the process ends
        # without the interpreter's teardown (~40 ms of CPU), unless something needs it.
        if (exit.code is None or isinstance(exit.code, int)) and not _user_code_loaded():
            from .._teardown import exit_without_teardown

            exit_without_teardown(exit.code)
        # The teardown finalises what the imports made only if it is not frozen.
        gc.unfreeze()
        raise
    except BaseException:  # an error: the interpreter's own exit, everything finalised
        gc.unfreeze()
        raise


def _user_code_loaded() -> bool:
    """Whether a hook's module was imported: it may count on its objects being finalised at
    exit, so the process then ends with the interpreter's full teardown."""
    options = sys.modules.get("trio_scrape.cli.options")
    return options is None or bool(getattr(options, "hooks_loaded", True))


def _block_sigint() -> bool:
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    except (AttributeError, OSError):  # no POSIX signal masks (Windows)
        return False
    return True


def _interrupted() -> NoReturn:
    """Exit 130 with one line, at once: nothing has been written yet that needs closing, and
    the interpreter's shutdown, had a second Ctrl-C come during it, would die by the signal."""
    sys.stderr.write("trio-scrape: interrupted\n")
    _exit_now(130)


def _exit_now(code: int) -> NoReturn:
    """Flush the standard streams and end the process with ``code``, skipping the
    interpreter's shutdown."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said
            pass
    os._exit(code)
