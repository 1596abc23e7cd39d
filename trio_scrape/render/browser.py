"""The headless browser process: found, started in its own process group with a DevTools
pipe, and stopped with every process it spawned.

Chromium forks a zygote, renderers, a GPU and a network process; all of them stay in the
process group of the browser, which is started as a session leader. Stopping it is one
``killpg(SIGKILL)``: synchronous, so it happens even when the crawl is being cancelled, and
nothing is left behind whether the crawl ended normally, by Ctrl-C, by its deadline, by an
exception or by the cancellation of an enclosing scope. If this Python process itself is
killed, the browser sees its DevTools pipe close and exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager

import trio

from ..errors import ConfigError
from .cdp import CdpConnection

__all__ = [
    "APT_PACKAGE",
    "Browser",
    "browser_args",
    "browser_groups",
    "find_browser",
    "group_memory",
    "group_pids",
    "open_browser",
]

#: The Debian package to install when no browser is found.
APT_PACKAGE = "chromium-headless-shell"
#: Names tried, leanest first: the headless shell starts faster and uses about half the
#: memory of the full browser, and renders the same pages (same Blink, same V8).
BROWSER_NAMES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
#: Where Debian puts the real binaries (the /usr/bin names are shell wrappers).
LIB_DIRS = ("/usr/lib/chromium",)
_STARTUP_TIMEOUT = 20.0


def find_browser(path: str | os.PathLike[str] | None = None) -> str:
    """The browser executable: ``path`` (a file, or a name looked up on PATH), else the first
    of :data:`BROWSER_NAMES` in /usr/lib/chromium/ or on PATH.

    Raises:
        ConfigError: ``path`` is not an executable, or no browser is installed
            (``field`` is ``"browser"``; the message names the apt package).
    """
    if path is not None:
        text = os.fspath(path)
        found = text if os.sep in text else shutil.which(text)
        if found is None or not os.path.isfile(found) or not os.access(found, os.X_OK):
            raise ConfigError("browser", f"{text!r} is not an executable file")
        return found
    for name in BROWSER_NAMES:
        for directory in LIB_DIRS:
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
        found = shutil.which(name)
        if found is not None:
            return found
    raise ConfigError(
        "browser",
        f"no Chromium found on PATH or in /usr/lib/chromium/: install it with "
        f"'apt-get install {APT_PACKAGE}', or give --browser PATH",
    )


def browser_args(
    *,
    user_data_dir: str,
    user_agent: str,
    images: bool = True,
    paint_once: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """Command-line switches for a crawling browser: headless, DevTools on fds 3/4, nothing
    running in the background (no updates, sync, crash reporter, first-run UI), WebRTC kept
    off the network (its UDP would bypass request interception), no animation thread, and
    ``--no-sandbox`` only when running as root, where Chromium refuses to start without it.

    ``paint_once`` (pages rendered, read and left, nothing done on them) also runs each
    renderer's compositor on its main thread (``--disable-threaded-compositing``): the
    browser's CPU per page falls by about a fifth, but the renderer then never acknowledges
    DevTools input events or screenshots, so a crawl whose handlers act on the tab, or that
    takes screenshots, must not ask for it."""
    args = [
        "--headless",
        "--remote-debugging-pipe",
        f"--user-data-dir={user_data_dir}",
        f"--user-agent={user_agent}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-gpu",
        "--disable-dev-shm-usage",  # containers often have a 64 MB /dev/shm
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--disable-breakpad",
        "--disable-crash-reporter",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        # RenderDocument: without it a tab's next page (same site) reuses its frame host
        # instead of building a new one per navigation: about a third less browser CPU a page.
        "--disable-features=Translate,MediaRouter,OptimizationHints,DialMediaRouteProvider,"
        "AutofillServerCommunication,CertificateTransparencyComponentUpdater,RenderDocument",
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
        "--metrics-recording-only",
        "--mute-audio",
        "--hide-scrollbars",
        # No animation thread and no checker-imaging: a crawled page is painted once or
        # twice, not animated.
        "--disable-threaded-animation",
        "--disable-checker-imaging",
        "--no-service-autorun",
        "--password-store=basic",
    ]
    if paint_once:
        args.append("--disable-threaded-compositing")
    if not images:
        args.append("--blink-settings=imagesEnabled=false")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")
    args += extra
    args.append("about:blank")
    return args


class Browser:
    """A running browser: its DevTools connection (``cdp``) and its process group."""

    def __init__(self, process: trio.Process, cdp: CdpConnection, executable: str) -> None:
        self.process = process
        self.cdp = cdp
        self.executable = executable
        self.pgid = process.pid  # a session leader: its pid is its group's id

    @property
    def alive(self) -> bool:
        return self.process.returncode is None and not self.cdp.closed

    def pids(self) -> list[int]:
        """The live (not zombie) processes of the browser's process group."""
        return group_pids(self.pgid)

    def memory(self) -> int:
        """Proportional set size (bytes) of all the browser's processes together: shared
        pages counted once, split among their sharers (so the sum is the real footprint)."""
        return group_memory(self.pgid)

    def kill(self) -> None:
        """SIGKILL the whole process group (synchronous; safe to call twice)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)


@asynccontextmanager
async def open_browser(
    executable: str,
    *,
    nursery: trio.Nursery,
    user_agent: str,
    images: bool = True,
    paint_once: bool = False,
    extra_args: Sequence[str] = (),
) -> AsyncIterator[Browser]:
    """Start the browser and yield it once its DevTools pipe answers (the pipe's reader task
    runs in ``nursery``); on exit, however it is reached (cancellation included), kill its
    process group and remove its profile.

    Raises:
        OSError: the executable could not be started, or it exited or did not answer within
            20 seconds (the message quotes the end of its standard error).
    """
    with tempfile.TemporaryDirectory(prefix="trio-scrape-chromium-") as profile:
        args = browser_args(
            user_data_dir=profile,
            user_agent=user_agent,
            images=images,
            paint_once=paint_once,
            extra=extra_args,
        )
        log_path = os.path.join(profile, "stderr.log")
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        # The browser reads commands on fd 3 and writes on fd 4. The child's ends are first
        # copied above 9 so that moving them onto 3 and 4 cannot overwrite one another.
        child_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)

        def move_pipes() -> None:  # in the child, before exec: async-signal-safe calls only
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)

        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            process = await trio.lowlevel.open_process(
                [executable, *args],
                preexec_fn=move_pipes,
                # Python's own descriptors are not inheritable (PEP 446): only 0-2 and the
                # two pipes move_pipes made (dup2 makes inheritable copies) reach the browser.
                close_fds=False,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        except BaseException:
            for fd in (child_r, child_w, to_browser_w, from_browser_r):
                os.close(fd)
            raise
        finally:
            os.close(log)
        os.close(child_r)
        os.close(child_w)
        cdp = CdpConnection(
            trio.lowlevel.FdStream(to_browser_w), trio.lowlevel.FdStream(from_browser_r)
        )
        browser = Browser(process, cdp, executable)
        try:
            # The reader runs in the caller's nursery: a nursery here would wrap whatever
            # the caller's block raises into an ExceptionGroup.
            await nursery.start(cdp.serve)
            with trio.move_on_after(_STARTUP_TIMEOUT) as startup:
                try:
                    await cdp.call("Browser.getVersion")
                except Exception as exc:
                    raise OSError(f"{executable} did not start: {_tail(log_path) or exc}") from None
            if startup.cancelled_caught:
                raise OSError(
                    f"{executable} did not answer in {_STARTUP_TIMEOUT:g}s: "
                    f"{_tail(log_path) or 'no output'}"
                )
            yield browser
        finally:
            browser.kill()
            with trio.CancelScope(shield=True):
                await cdp.aclose()  # ends the reader task
                with trio.move_on_after(5):
                    await process.wait()
                    # SIGKILL is delivered at once but a process takes a moment to die:
                    # return only once none is left, so callers can count on it.
                    while group_pids(browser.pgid):  # noqa: ASYNC110 (only /proc tells)
                        await trio.sleep(0.01)


def group_pids(pgid: int) -> list[int]:
    """Live processes (not zombies) whose process group is ``pgid``, from /proc."""
    return [pid for pid, _, group in _live_processes() if group == pgid]


def browser_groups(parents: Iterable[int]) -> list[int]:
    """The process groups of browsers started by the processes ``parents``: their children
    that lead a group of their own (as :func:`open_browser` starts them)."""
    wanted = set(parents)
    return [pid for pid, parent, group in _live_processes() if parent in wanted and group == pid]


def _live_processes() -> Iterator[tuple[int, int, int]]:
    """``(pid, parent pid, process group)`` of every live process (not a zombie), from /proc."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as file:
                stat = file.read()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces and parentheses).
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and fields[0] != b"Z":
            yield int(entry), int(fields[1]), int(fields[2])


def group_memory(pgid: int) -> int:
    """Total PSS (bytes) of the live processes of a process group."""
    return sum(_pss(pid) for pid in group_pids(pgid))


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as file:
            for line in file:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _tail(path: str, lines: int = 2) -> str:
    try:
        with open(path, "rb") as file:
            text = file.read()[-4096:].decode("utf-8", "replace")
    except OSError:
        return ""
    return " / ".join(line.strip() for line in text.strip().splitlines()[-lines:])
