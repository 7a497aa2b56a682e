"""The newest keys of a time-ordered prefix, a few LIST calls per page however many keys it holds.

Every key of the log (`logs/YYYY/MM/DD/<id>.json`) and of an account's history (`users/<name>/...`)
sorts by time: the day leads, and the id is a UUIDv7 whose first 48 bits are its millisecond. S3 lists
in ascending order only, so a page of the newest keys before a cursor is read as a time window that ends
at the cursor: one `ListObjectsV2(StartAfter=<the key of the window's start>)` returns all of the window
when it holds no more keys than the listing asks for.

A page searches for a window start with at least the keys it needs above it and no more than one
listing holds: a start with too few keys above it and one with too many bracket the answer, and each
listing narrows the bracket. The first guess comes from the last page: the density of its keys, and for
a first page the oldest key the last first page showed (those keys are still there, so after a quiet
spell the page still costs one listing, and any newer keys come with it). A guess that misses is
followed by one from what that listing showed; every third step halves the bracket instead (in its
logarithm while it spans orders of magnitude), which bounds the search: a page beside a burst of 100,000
keys after a quiet week costs about 20 listings the first time and one after, never a walk through the
burst (a fuzz of random bursts needed at most 44). The oldest key of a prefix is read once per process,
so no window reaches further back than the history does.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from qcompute import contract

LISTING_KEYS = 1000  # what one ListObjectsV2 returns at most
# A listing asks for this many keys per key missing from the page, and at least LISTED_AT_LEAST: a
# window is sized to hold MARGIN times those, and room for far more only costs time (every key listed
# is sent and parsed), while too little room makes a listing of a burst stop short.
LISTED_PER_MISSING = 4
LISTED_AT_LEAST = 100
# The first window of a prefix never seen (a guess: the next pages learn the density).
FIRST_WINDOW_SECONDS = 3600.0
# A window asks for this many times the keys it needs: a rate is an estimate.
MARGIN = 1.5
# Prefixes whose rate and oldest key a process remembers (one per account that looked, plus the log).
REMEMBERED_PREFIXES = 1000
# A page never makes more calls than this (a bound, not an expectation: see the module's text).
MAX_CALLS_PER_PAGE = 128
# Windows are never narrower: ids are to the millisecond.
MIN_WINDOW_SECONDS = 0.002
_ID_AT_END = re.compile(rf"/({contract.REQUEST_ID_PATTERN.pattern})\.json$")


def key_time(key: str) -> float | None:
    """When the request of a key was submitted, in seconds since the epoch (None: not a log key)."""
    match = _ID_AT_END.search(key)
    return contract.request_time(match.group(1)).timestamp() if match else None


def first_key_at(prefix: str, seconds: float) -> str:
    """A string that sorts just before every key of the prefix submitted at or after `seconds`."""
    first = contract.first_id_at(max(0.0, seconds))
    return f"{prefix}{contract.request_time(first):%Y/%m/%d}/{first}"


class NoPage(RuntimeError):
    """The search for a page's window did not end within MAX_CALLS_PER_PAGE listings: never seen (a
    random fuzz of bursts needed at most 44), but a page is never cut short silently."""


class NewestFirst:
    """Newest-first pages of a bucket's time-ordered keys; one per process, shared by its threads."""

    def __init__(self, s3: Any, bucket: str, listing_keys: int = LISTING_KEYS):
        self.s3 = s3
        self.bucket = bucket
        self.listing_keys = listing_keys
        self._lock = threading.Lock()
        # What the pages of each prefix saw last: the next page starts from it.
        self._known: OrderedDict[str, _Known] = OrderedDict()

    def before(self, prefix: str, end: str | None, count: int) -> list[str]:
        """Up to `count` keys of `prefix` that sort before `end` (all of them if None), newest first."""
        known = self._remembered(prefix)
        oldest_time = known.oldest_time
        if oldest_time is None:
            oldest_time = self._oldest_time(prefix)
            if oldest_time is None:
                return []  # nothing under the prefix yet (not remembered: it will not stay so)
        # A first page's windows end at no key: they reach back from now, or from the newest key a
        # first page saw if later (a frontend whose clock runs ahead), and any newer key is in them.
        top = max(time.time(), known.newest_time or 0.0) if end is None else (key_time(end) or 0.0)
        most = self._most(count)
        # Distances back from `top`: `short` holds fewer keys than needed, `wide` more than one
        # listing (or reaches the first key). The answer lies between them.
        short, wide = 0.0, max(top - oldest_time + MIN_WINDOW_SECONDS, MIN_WINDOW_SECONDS)
        guess = self._wanted(count) / known.rate if known.rate else FIRST_WINDOW_SECONDS
        if end is None and known.first_page_from:
            # What the last first page showed is still there: reach back to its oldest key, past any
            # quiet spell since, and the newer keys come with it.
            guess = top - known.first_page_from + MIN_WINDOW_SECONDS
        from_first_key_tried = False
        for step in range(MAX_CALLS_PER_PAGE):
            if wide - short <= MIN_WINDOW_SECONDS:
                keys = self._every_key(prefix, top - wide, end)  # more keys in a millisecond than a listing
                break
            # Two guesses, then a halving, and so on: the guesses are usually right, the halvings bound it.
            guessing = step % 3 != 2 and short < guess and (guess < wide or not from_first_key_tried)
            reach = min(guess, wide) if guessing else _between(short, wide)
            start = None if reach >= wide else first_key_at(prefix, top - reach)
            from_first_key_tried = from_first_key_tried or start is None
            listing = self._window(prefix, start, end, most)
            if listing.complete and (len(listing.keys) >= count or start is None):
                keys = listing.keys
                break
            if listing.complete:
                short = reach
                # As many keys again per second as this window showed; eightfold when it showed none.
                guess = reach * self._wanted(count) / len(listing.keys) if listing.keys else 8 * reach
            else:
                wide = reach
                rate = _rate(listing.keys)
                guess = self._wanted(count) / rate if rate else reach / 2
        else:
            raise NoPage(f"no page of {prefix!r} within {MAX_CALLS_PER_PAGE} listings")
        page = keys[::-1][:count]
        rate = _rate(page[::-1]) if len(page) >= count else None
        remembered = _Known(rate or known.rate, oldest_time, known.newest_time, known.first_page_from)
        if end is None and len(page) >= count:
            remembered = replace(
                remembered, newest_time=key_time(page[0]), first_page_from=key_time(page[-1])
            )
        self._remember(prefix, remembered)
        return page

    def _wanted(self, missing: int) -> float:
        """How many keys a window should hold: those missing and a margin, within one listing."""
        return min(missing * MARGIN, self._most(missing) / MARGIN)

    def _most(self, missing: int) -> int:
        """How many keys one listing asks for."""
        return min(self.listing_keys, max(LISTED_AT_LEAST, LISTED_PER_MISSING * missing))

    def _window(self, prefix: str, start: str | None, end: str | None, most: int) -> _Listing:
        """One listing of up to `most` keys from `start` (exclusive; None: the first key) towards
        `end` (exclusive): the log keys it gave below `end`, and whether it reached `end`."""
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": most}
        if start is not None:
            arguments["StartAfter"] = start
        listing = self.s3.list_objects_v2(**arguments)
        listed = [item["Key"] for item in listing.get("Contents", [])]
        keys = [key for key in listed if (end is None or key < end) and key_time(key) is not None]
        passed_end = end is not None and bool(listed) and listed[-1] >= end
        return _Listing(keys, passed_end or not listing.get("IsTruncated"))

    def _every_key(self, prefix: str, start_time: float, end: str | None) -> list[str]:
        """Every key from a moment to `end`, listing after listing: only ever reached when one
        millisecond holds more keys than a listing."""
        keys: list[str] = []
        start: str | None = first_key_at(prefix, start_time)
        while True:
            listing = self._window(prefix, start, end, self.listing_keys)
            keys += listing.keys
            if listing.complete or not listing.keys:
                return keys
            start = listing.keys[-1]

    def _oldest_time(self, prefix: str) -> float | None:
        """When the prefix's first key was submitted (None: the prefix is empty; 0 when its first
        keys are not log keys, so windows may reach back to the epoch)."""
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=10)
        if not listing.get("Contents"):
            return None
        return next((t for item in listing["Contents"] if (t := key_time(item["Key"])) is not None), 0.0)

    def _remembered(self, prefix: str) -> _Known:
        with self._lock:
            return self._known.get(prefix, _Known())

    def _remember(self, prefix: str, known: _Known) -> None:
        with self._lock:
            self._known[prefix] = known
            self._known.move_to_end(prefix)
            while len(self._known) > REMEMBERED_PREFIXES:
                self._known.popitem(last=False)


@dataclass(frozen=True)
class _Known:
    rate: float | None = None  # keys per second where the last page was
    oldest_time: float | None = None  # when the prefix's first key was submitted
    newest_time: float | None = None  # and its newest that a first page saw
    first_page_from: float | None = None  # when the oldest key of that first page was submitted


@dataclass(frozen=True)
class _Listing:
    keys: list[str]  # the log keys it gave below the window's end, oldest first
    complete: bool  # whether it reached the window's end


def _between(short: float, wide: float) -> float:
    """Halfway: in the logarithm while the bracket spans more than a factor of two, then plainly."""
    low = max(short, MIN_WINDOW_SECONDS)
    return (low * wide) ** 0.5 if wide > 2 * low else (short + wide) / 2


def _rate(keys: list[str]) -> float | None:
    """Keys per second across a run of keys in time order (None when they span no time)."""
    if not keys:
        return None
    first, last = key_time(keys[0]), key_time(keys[-1])
    if first is None or last is None or last <= first:
        return None
    return len(keys) / (last - first)
