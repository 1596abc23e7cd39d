"""HostLimiter.observe: typed events, each naming the host's origin (and a request's URL)."""

from __future__ import annotations

import dataclasses

import pytest

from trio_scrape import CrawlConfig
from trio_scrape.frontier.pacing import (
    HostEvent,
    HostLimiter,
    HostPaused,
    RequestFinished,
    RobotsLoaded,
)

ORIGIN = "http://x.test"


async def test_observers_get_typed_events() -> None:
    limiter = HostLimiter(CrawlConfig(robots=True))
    events: list[HostEvent] = []
    limiter.observe(events.append)
    limiter.start(ORIGIN)
    limiter.robots_loaded(ORIGIN, 2.0)
    limiter.robots_loaded("http://y.test", 0)  # no Crawl-delay
    limiter.pause(ORIGIN, 5.0)
    limiter.finish(ORIGIN, latency=0.25, failed=False, url=ORIGIN + "/a")
    limiter.start(ORIGIN)
    limiter.finish(ORIGIN, latency=None, failed=True, url=ORIGIN + "/b")
    limiter.start(ORIGIN)
    limiter.finish(ORIGIN, latency=0.1, failed=False)  # no URL: nothing to tell
    assert events == [
        RobotsLoaded(ORIGIN, 2.0),
        RobotsLoaded("http://y.test", None),
        HostPaused(ORIGIN, 5.0),
        RequestFinished(ORIGIN, ORIGIN + "/a", 0.25, False),
        RequestFinished(ORIGIN, ORIGIN + "/b", None, True),
    ]
    finished = events[3]
    assert isinstance(finished, RequestFinished)
    assert finished.origin == ORIGIN and finished.url == ORIGIN + "/a"
    with pytest.raises(dataclasses.FrozenInstanceError):
        finished.url = "http://z.test/"  # type: ignore[misc]
