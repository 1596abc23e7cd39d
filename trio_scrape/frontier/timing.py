"""Round trips to a shared frontier's server, counted and timed where its calls go through.

A :class:`CallTimes` is updated once per call (one ``perf_counter`` pair, a dict increment
and a bucket increment), and read as a :class:`CallTimesSnapshot` by the metrics endpoint
(``--metrics``) when it is scraped. A crawl without ``--metrics`` has none: its calls are
neither counted nor timed.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
from collections.abc import Mapping

__all__ = ["CALL_BUCKETS", "CallTimes", "CallTimesSnapshot"]

#: Upper bounds (seconds) of the round-trip latency histogram's buckets (+Inf is implied).
CALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


@dataclasses.dataclass(frozen=True)
class CallTimesSnapshot:
    """Round trips so far: by function, and their latencies as a histogram."""

    calls: Mapping[str, int]  #: round trips by the server-side function called
    buckets: tuple[int, ...]  #: round trips per bucket of :data:`CALL_BUCKETS`, then +Inf
    seconds: float  #: the sum of their latencies

    @property
    def count(self) -> int:
        return sum(self.buckets)


class CallTimes:
    """Counts and times a client's round trips (:meth:`observe` after each one)."""

    __slots__ = ("_buckets", "_calls", "_seconds")

    def __init__(self) -> None:
        self._calls: collections.Counter[str] = collections.Counter()
        self._buckets = [0] * (len(CALL_BUCKETS) + 1)
        self._seconds = 0.0

    def observe(self, function: str, seconds: float) -> None:
        """One round trip to ``function`` took ``seconds`` (failed ones included)."""
        self._calls[function] += 1
        self._buckets[bisect.bisect_left(CALL_BUCKETS, seconds)] += 1
        self._seconds += seconds

    def snapshot(self) -> CallTimesSnapshot:
        return CallTimesSnapshot(dict(self._calls), tuple(self._buckets), self._seconds)
