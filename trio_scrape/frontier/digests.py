"""URL digests, all three schemes side by side, and the seen-set of the SQLite frontier.

Every frontier compares URLs by a 64-bit digest of their canonical key
(:func:`~trio_scrape.model.urls.url_key`: two spellings of one page have one key), never by
their text. There are three schemes, because what a digest is stored in decides what it may be:

=====================  =================================  =====================================
scheme                 used by                            why this one
=====================  =================================  =====================================
:func:`memory_digest`  :class:`~.memory.MemoryFrontier`   Python's ``hash()`` (SipHash, salted
                       (in memory only)                   per process): already cached on the
                                                          string, the fastest; never stored,
                                                          so the salt does not matter
:func:`state_digest`   ``--state`` (SQLite:               XXH3-64 seeded with a random number
                       ``links.digests``, ``pages``,      kept in the state (``digest_seed``):
                       :class:`DigestSet`)                a site cannot craft a link that
                                                          collides with another page's URL
                                                          without knowing it; 0.04 us a URL
                                                          against 0.5 us for BLAKE2b
:func:`url_digest`     the Redis fleet (seen-set keys,    BLAKE2b-64, unseeded: every process
:func:`redis_digest`   leases, ``pages``; as 16 hex       of a fleet, on any machine, must
                       digits)                            compute the same digest with nothing
                                                          shared but the crawl id
=====================  =================================  =====================================

They are not unified because the two stable ones are stored: changing the state's scheme
breaks every existing state file (its ``schema`` would have to change, and states made before
be refused), and changing the fleet's breaks every running fleet (processes of two versions
would each find the other's URLs unseen) and every stored crawl's recrawl memos. A new scheme
means a new state schema or a new Redis library name, on purpose. Any false "seen" among a
million URLs: about 3e-8 with any of them.

The rest of this module is the seen-set of the SQLite frontier: a compact map from each URL's
digest to where its row is and how deep it was found.

Every link a crawl finds goes through :meth:`DigestSet.add_unseen`, and every request handed
out through a look-up, so this is the per-link hot path of a ``--state`` crawl. Both halves
are C, called once per URL from a plain loop:

- the digest is XXH3-64 (``xxhash``) of the URL's key, seeded with a random number kept in
  the state (a site cannot craft a link that collides with another page's URL without
  knowing it): 0.04 us against 0.5 us for BLAKE2b through ``hashlib``;
- the map is 256 ``preshed`` tables (uint64 -> uint64 hash tables with linear probing, kept
  30-60% full, 16 bytes a slot), picked by a digest's top byte, so that growing one rehashes
  1/256 of the set (microseconds at a million URLs), never the whole of it at once. A URL
  costs 27-53 bytes, against ~150 in a ``dict`` of ints.

Each digest maps to ``seq << 24 | depth << 1 | handed_out``: the seq of the URL's row in the
state, its shortest known depth, and whether it was handed out (what
:class:`~trio_scrape.frontier.memory.MemoryFrontier` keeps per URL, see
:mod:`~trio_scrape.frontier.depths`). A depth value that does not fit 24 bits (a chain of 8
million pages) is kept aside in a ``dict``.
"""

from __future__ import annotations

import array
import hashlib
from collections.abc import Callable, Iterable
from typing import Any

from preshed.maps import PreshMap
from xxhash import xxh3_64_intdigest

from ..model.urls import url_key

__all__ = [
    "DigestSet",
    "key_digest",
    "memory_digest",
    "redis_digest",
    "state_digest",
    "url_digest",
]


def memory_digest(url: str) -> int:
    """The in-memory frontier's digest: ``hash()`` of the URL's key, valid in this process
    only (MemoryFrontier inlines it, with url_key's shortcut, on its per-link path)."""
    return hash(url_key(url))


def state_digest(url: str, seed: int) -> int:
    """A ``--state``'s digest: unsigned XXH3-64 of the URL's key, seeded with the state's
    ``digest_seed`` (:meth:`DigestSet.digest`; :meth:`DigestSet.add_unseen` inlines it)."""
    return xxh3_64_intdigest(url_key(url).encode("utf-8", "surrogatepass"), seed)


def key_digest(key: str, seed: int) -> int:
    """A ``--state``'s digest of a key that is one already: a scraper's request key
    (:attr:`~trio_scrape.Request.key`). ``state_digest(url, seed)`` is
    ``key_digest(url_key(url), seed)``, so a ``GET`` request and a plain link to one page
    have one digest."""
    return xxh3_64_intdigest(key.encode("utf-8", "surrogatepass"), seed)


def url_digest(url: str) -> int:
    """The fleet's digest: a stable, signed 64-bit BLAKE2b of the URL's key (it fits an
    SQLite INTEGER), the same in every process on every machine. ``url`` is a browser URL,
    as frontiers are given."""
    return int.from_bytes(
        hashlib.blake2b(url_key(url).encode("utf-8", "surrogatepass"), digest_size=8).digest(),
        "little",
        signed=True,
    )


def redis_digest(url: str) -> str:
    """:func:`url_digest` as Redis keys hold it: 16 hex digits of the unsigned value, the
    first 4 naming its seen-set bucket, the other 12 its field there (the digest's bytes
    from the last: the unsigned little-endian value written big-endian)."""
    key = url_key(url).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(key, digest_size=8).digest()[::-1].hex()


_VALUE_BITS = 24
_VALUE_MASK = (1 << _VALUE_BITS) - 1  # as a depth value: "kept aside in _deep"
_TABLES = 256
_TABLE_SHIFT = 56  # a digest's top byte picks its table


class DigestSet:
    """A set of URL digests, each with the ``seq`` of its row and a depth value
    (``depth << 1 | handed_out``). Digests are unsigned 64-bit integers: see
    :meth:`digest`. Not thread-safe: the event loop's thread owns it."""

    __slots__ = ("_deep", "_len", "_tables", "seed")

    def __init__(self, seed: int, *, expected: int = 0) -> None:
        """``seed``: the state's digest seed (0 <= seed < 2**64); ``expected``: how many
        digests will be added (reading a state back), so that no table grows meanwhile."""
        self.seed = seed
        size = 8
        while size * 3 < (expected // _TABLES + 64) * 5:
            size *= 2
        # preshed ships no type information: each table is a PreshMap.
        self._tables: list[Any] = [PreshMap(size) for _ in range(_TABLES)]
        self._deep: dict[int, int] = {}  # digest -> a depth value of 24 bits or more
        self._len = 0

    def digest(self, url: str) -> int:
        """The digest of a browser URL's canonical key (:func:`~trio_scrape.model.urls.url_key`):
        two URLs have one digest when they are spellings of one page. Any false "seen"
        among a million URLs: about 3e-8. (:func:`state_digest` with this set's seed.)"""
        return state_digest(url, self.seed)

    def __len__(self) -> int:
        return self._len

    def __contains__(self, digest: int) -> bool:
        return self._tables[digest >> _TABLE_SHIFT][digest] is not None

    def get(self, digest: int, /) -> int | None:
        """The ``depth << 1 | handed_out`` of ``digest``, or ``None`` if it is not in the set."""
        found: int | None = self._tables[digest >> _TABLE_SHIFT][digest]
        if found is None:
            return None
        value = found & _VALUE_MASK
        return self._deep[digest] if value == _VALUE_MASK else value

    def seq(self, digest: int) -> int | None:
        """The seq of ``digest``'s row, or ``None`` if it is not in the set."""
        found: int | None = self._tables[digest >> _TABLE_SHIFT][digest]
        return None if found is None else found >> _VALUE_BITS

    def __setitem__(self, digest: int, value: int, /) -> None:
        """Set the ``depth << 1 | handed_out`` of a digest in the set.

        Raises:
            KeyError: the digest is not in the set.
        """
        table = self._tables[digest >> _TABLE_SHIFT]
        found: int | None = table[digest]
        if found is None:
            raise KeyError(digest)
        table[digest] = found >> _VALUE_BITS << _VALUE_BITS | self._fit(digest, value)

    def _fit(self, digest: int, value: int) -> int:
        """``value`` as stored beside a seq: itself, or the mark of one kept in ``_deep``."""
        if value < _VALUE_MASK:
            if self._deep:
                self._deep.pop(digest, None)
            return value
        self._deep[digest] = value
        return _VALUE_MASK

    def add_unseen(
        self, urls: Iterable[str], keep: Callable[[str], bool] | None, first: int, value: int
    ) -> tuple[list[str], array.array[int], list[tuple[str, int, int]]]:
        """Add the URLs whose :meth:`digest` is not in the set yet (and that ``keep``, if
        given, accepts: it is asked only about those, in order), with seqs from ``first`` in
        order and the depth value ``value``. Return them, their digests (``"Q"``), and
        ``(url, digest, known value)`` of the URLs seen before with a larger depth than
        ``value >> 1`` (a URL twice in ``urls`` is seen before the second time).

        The per-link hot path of a crawl: :meth:`digest` and the look-up are inlined.
        """
        new: list[str] = []
        new_digests = array.array("Q")
        shorter: list[tuple[str, int, int]] = []
        tables, seed, deep, xxh3 = self._tables, self.seed, self._deep, xxh3_64_intdigest
        stored = min(value, _VALUE_MASK)
        depth = value >> 1
        for url in urls:
            key = url if "%" not in url and "?" not in url else url_key(url)  # its shortcut
            digest = xxh3(key.encode("utf-8", "surrogatepass"), seed)
            table = tables[digest >> _TABLE_SHIFT]
            found = table[digest]
            if found is None:
                if keep is not None and not keep(url):
                    continue
                table[digest] = (first + len(new)) << _VALUE_BITS | stored
                if stored == _VALUE_MASK:
                    deep[digest] = value
                new.append(url)
                new_digests.append(digest)
                continue
            known = found & _VALUE_MASK
            if known == _VALUE_MASK:
                known = deep[digest]
            if known >> 1 > depth:
                shorter.append((url, digest, known))
        self._len += len(new)
        return new, new_digests, shorter

    def load(self, digests: array.array[int], first: int, value: int) -> None:
        """Add digests known to be new, with seqs from ``first`` and the depth value
        ``value`` (reading a state back)."""
        tables, deep = self._tables, self._deep
        stored = min(value, _VALUE_MASK)
        for seq, digest in enumerate(digests, first):
            tables[digest >> _TABLE_SHIFT][digest] = seq << _VALUE_BITS | stored
            if stored == _VALUE_MASK:
                deep[digest] = value
        self._len += len(digests)
