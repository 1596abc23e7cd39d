"""The DevTools client: framing and routing over an in-memory pipe, then against real Chromium."""

from __future__ import annotations

import json
import os
import signal

import pytest
import trio
import trio.testing

from trio_scrape import ConfigError
from trio_scrape.render.browser import browser_groups, find_browser, group_pids, open_browser
from trio_scrape.render.cdp import BrowserClosed, CdpConnection, CdpError, EventOverflow

try:
    BROWSER: str | None = find_browser()
except ConfigError:
    BROWSER = None
needs_browser = pytest.mark.skipif(
    BROWSER is None, reason="Chromium is not installed (apt-get install chromium-headless-shell)"
)


class FakeBrowser:
    """The browser's end of an in-memory pipe: reads commands, writes whatever a test says."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = b""

    async def command(self) -> dict[str, object]:
        while b"\0" not in self.buffer:
            self.buffer += await self.stream.receive_some()
        raw, self.buffer = self.buffer.split(b"\0", 1)
        message = json.loads(raw)
        assert isinstance(message, dict)
        return message

    async def send(self, *chunks: bytes) -> None:
        for chunk in chunks:
            await self.stream.send_all(chunk)


def frame(message: dict[str, object]) -> bytes:
    return json.dumps(message).encode() + b"\0"


async def test_replies_match_calls_by_id_across_split_and_merged_frames(
    nursery: trio.Nursery,
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    cdp = CdpConnection(ours, ours)
    await nursery.start(cdp.serve)
    browser = FakeBrowser(theirs)
    results: dict[str, object] = {}

    async def call(name: str) -> None:
        results[name] = await cdp.call(name, {"x": 1}, session_id="S" if name == "b" else None)

    async with trio.open_nursery() as calls:
        calls.start_soon(call, "a")
        calls.start_soon(call, "b")
        first, second = await browser.command(), await browser.command()
        assert {first["method"], second["method"]} == {"a", "b"}
        b = first if first["method"] == "b" else second
        a = second if b is first else first
        assert b["sessionId"] == "S" and "sessionId" not in a and a["params"] == {"x": 1}
        big = "y" * 300_000  # arrives in several reads
        reply_b = frame({"id": b["id"], "result": {"big": big}})
        # Replies out of order, one split mid-message, two in one write, with noise between.
        await browser.send(
            reply_b[:10],
            reply_b[10:]
            + b"not json\0"
            + frame({"method": "Some.eventNobodyKnows", "params": {}})
            + frame({"id": a["id"], "result": {"n": 1}}),
        )
    assert results == {"a": {"n": 1}, "b": {"big": big}}
    assert cdp.pending_count() == 0


async def test_errors_events_overflow_and_closing(nursery: trio.Nursery) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    cdp = CdpConnection(ours, ours)
    await nursery.start(cdp.serve)
    browser = FakeBrowser(theirs)

    async def failing() -> None:
        with pytest.raises(CdpError, match="no such method") as info:
            await cdp.call("Nope.nothing")
        assert info.value.code == -32601

    async with trio.open_nursery() as calls:
        calls.start_soon(failing)
        command = await browser.command()
        await browser.send(
            frame({"id": command["id"], "error": {"code": -32601, "message": "no such method"}})
        )

    with cdp.subscribe(["Page.loadEventFired"], session_id="S") as events:
        await browser.send(
            frame({"method": "Page.loadEventFired", "sessionId": "OTHER", "params": {"t": 0}}),
            frame({"method": "Page.loadEventFired", "sessionId": "S", "params": {"t": 1}}),
        )
        assert await events.receive() == {"t": 1, "method": "Page.loadEventFired"}
        assert cdp.subscriber_count() == 1
    assert cdp.subscriber_count() == 0

    # A subscriber that stops reading is cut off, not allowed to stall the connection.
    with cdp.subscribe(["Tick"]) as ticks:
        await browser.send(b"".join(frame({"method": "Tick"}) for _ in range(1100)))
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(EventOverflow):
            while True:
                await ticks.receive()

    # Cancelled while waiting: the subscription goes with the cancelled block.
    with trio.move_on_after(0.01), cdp.subscribe(["Never"]) as never:
        await never.receive()
    assert cdp.subscriber_count() == 0

    async def pending() -> None:
        with pytest.raises(BrowserClosed):
            await cdp.call("Runtime.evaluate")

    with cdp.subscribe(["Page.loadEventFired"]) as events:
        async with trio.open_nursery() as calls:
            calls.start_soon(pending)
            await browser.command()
            await theirs.aclose()  # the browser dies
        with pytest.raises(BrowserClosed):
            await events.receive()
    assert cdp.pending_count() == 0
    with pytest.raises(BrowserClosed):
        await cdp.call("Browser.getVersion")


@needs_browser
async def test_real_browser_commands_sessions_events_and_death(nursery: trio.Nursery) -> None:
    assert BROWSER is not None
    async with open_browser(BROWSER, nursery=nursery, user_agent="cdp-test") as browser:
        cdp = browser.cdp
        version = await cdp.call("Browser.getVersion")
        assert version["userAgent"] == "cdp-test"
        with pytest.raises(CdpError, match="wasn't found"):
            await cdp.call("Nope.nothing")
        target = await cdp.call("Target.createTarget", {"url": "about:blank"})
        attach = {"targetId": target["targetId"], "flatten": True}
        session = (await cdp.call("Target.attachToTarget", attach))["sessionId"]
        await cdp.call("Page.enable", session_id=session)
        with cdp.subscribe(["Page.loadEventFired"], session_id=session) as events:
            await cdp.call(
                "Page.navigate",
                {"url": "data:text/html,<title>t</title>"},
                session_id=session,
            )
            assert (await events.receive())["method"] == "Page.loadEventFired"
        value = await cdp.call(
            "Runtime.evaluate",
            {"expression": "'x'.repeat(3 * 1024 * 1024).length", "returnByValue": True},
            session_id=session,
        )
        assert value["result"]["value"] == 3 * 1024 * 1024
        pgid = browser.pgid
        assert browser.pids() and browser.memory() > 10_000_000
        assert browser_groups([os.getpid()]) == [pgid]  # how a crawler finds its children's

        async def wait_forever() -> None:
            with pytest.raises(BrowserClosed):
                await cdp.call(
                    "Runtime.evaluate",
                    {"expression": "new Promise(() => {})", "awaitPromise": True},
                    session_id=session,
                )

        with trio.fail_after(10):
            async with trio.open_nursery() as calls:
                calls.start_soon(wait_forever)
                await trio.testing.wait_all_tasks_blocked()
                os.kill(browser.process.pid, signal.SIGKILL)
        assert cdp.pending_count() == 0 and not browser.alive
    assert group_pids(pgid) == []
