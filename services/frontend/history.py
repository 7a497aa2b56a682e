"""The newest keys of a time-ordered prefix, a few LIST calls per page however many keys it holds.

Every key of the log (`logs/YYYY/MM/DD/<id>.json`) and of an account's history (`users/<name>/...`)
sorts by time: the day leads, and the id is a UUIDv7 whose first 48 bits are its millisecond. S3 lists
in ascending order only, so a page of the newest keys before a cursor is read as a time window that ends
at the cursor: one `ListObjectsV2(StartAfter=<the key of the window's start>)` returns all of the window
when it holds at most a listing's 1,000 keys.

The window's width comes from the rate of keys seen last on that prefix, so a page usually costs one
call, and two when the rate has changed. A window that held too many keys is narrowed to the rate it
showed (what it did list is kept: the next window ends where it stopped, so every call makes progress);
one that held too few is widened, at least doubled and eightfold when empty, so a sparse history is
crossed in a few calls. The oldest key of a prefix is read once per process, so no window reaches
further back than the history does.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from qcompute import contract

LISTING_KEYS = 1000  # what one ListObjectsV2 returns at most
# A listing asks for this many keys per key missing from the page, and at least LISTED_AT_LEAST: a
# window is sized to hold MARGIN times those, and room for far more only costs time (every key listed
# is sent and parsed), while too little room makes a listing of a burst stop short.
LISTED_PER_MISSING = 4
LISTED_AT_LEAST = 100
# The first window of a prefix never seen: an hour, a day's thousandth of a busy service.
FIRST_WINDOW_SECONDS = 3600.0
# A window asks for this many times the keys it needs: a rate is an estimate.
MARGIN = 1.5
# Prefixes whose rate and oldest key a process remembers (one per account that looked, plus the log).
REMEMBERED_PREFIXES = 1000
# A page never makes more calls than this (a bound, not an expectation: see the module's text).
MAX_CALLS_PER_PAGE = 64
# Windows are never narrower: ids are to the millisecond.
MIN_WINDOW_SECONDS = 0.002
_ID_AT_END = re.compile(r"/([0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12})\.json$")


def key_time(key: str) -> float | None:
    """When the request of a key was submitted, in seconds since the epoch (None: not a log key)."""
    match = _ID_AT_END.search(key)
    return contract.request_time(match.group(1)).timestamp() if match else None


def first_key_at(prefix: str, seconds: float) -> str:
    """A string that sorts just before every key of the prefix submitted at or after `seconds`."""
    millis = max(0, round(seconds * 1000))
    day = datetime.fromtimestamp(millis / 1000, UTC)
    digits = f"{millis:012x}"
    return f"{prefix}{day:%Y/%m/%d}/{digits[:8]}-{digits[8:]}"


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
        known, first_page = self._remembered(prefix), end is None
        rate, oldest_time = known.rate, known.oldest_time
        if oldest_time is None:
            oldest_time = self._oldest_time(prefix)
            if oldest_time is None:
                return []  # nothing under the prefix yet (not remembered: it will not stay so)
        upper_time = key_time(end) if end is not None else time.time()
        if upper_time is None:
            return []
        # The first page's first window reaches back from the newest key seen, not from now: after a
        # quiet spell, a window from now would hold nothing (the window still takes any newer key).
        anchor = min(upper_time, known.newest_time or upper_time) if first_page else upper_time
        found: list[str] = []
        # Listings that held too many keys, the newest last: each gave every key from its start up to
        # its last one, which bounds the next window from below (so every call makes progress).
        too_full: list[_Listing] = []
        width = self._wanted(count) / rate if rate else FIRST_WINDOW_SECONDS
        for _ in range(MAX_CALLS_PER_PAGE):
            if len(found) >= count:
                break
            start_time = anchor - max(width, MIN_WINDOW_SECONDS)
            start: str | None = first_key_at(prefix, start_time)
            if too_full and start <= too_full[-1].last:
                start, start_time = too_full[-1].last, too_full[-1].last_time
            elif not too_full and start_time <= oldest_time:
                start = None  # back to the first key: this window is the last
            listing = self._window(prefix, start, start_time, end, self._most(count - len(found)))
            window_top, anchor = anchor, upper_time
            if not listing.complete:
                too_full.append(listing)
                # Narrow to the rate these keys show (but to no less than an eighth of what this listing
                # did not reach: the rate of a burst says little about the quiet after it), and at most
                # to what it did not reach.
                rate = _rate(listing.keys) or rate
                fitting = self._wanted(count - len(found)) / rate if rate else width
                # A first window reaching back from the newest key seen stays anchored there, unless
                # its keys go on past it (many new ones): then from now.
                if listing.last_time <= window_top:
                    anchor = window_top
                unreached = anchor - listing.last_time
                width = min(width / 2, max(fitting, unreached / 8), unreached)
                continue
            found += reversed(listing.keys)
            if listing.keys:
                rate = len(listing.keys) / max(window_top - start_time, MIN_WINDOW_SECONDS)
            end, upper_time = start, start_time
            anchor = upper_time
            # A window that reached a too-full listing joins it: that listing holds the keys below.
            while too_full and end == too_full[-1].last:
                below = too_full.pop()
                found += reversed(below.keys)
                end, upper_time = below.start, below.start_time
                anchor = upper_time
            if end is None:
                break  # the first key is in
            # Too few: the rest are older. Widen to the rate seen, at least double, and eightfold after
            # an empty window (a quiet spell, or a sparse history).
            needed = self._wanted(count - len(found)) / rate if rate else 0.0
            width = max((2 if listing.keys else 8) * width, needed)
        # The density of this page's own keys is the best guess for the next one at this place (the
        # windows' rates may include a quiet spell).
        page_rate = _rate(found[:count][::-1])
        rate = page_rate if page_rate and len(found) >= count else rate
        newest_time = key_time(found[0]) if found and first_page else known.newest_time
        self._remember(prefix, _Known(rate, oldest_time, newest_time))
        return found[:count]

    def _wanted(self, missing: int) -> float:
        """How many keys a window should hold: those missing and a margin, within one listing."""
        return min(missing * MARGIN, self._most(missing) / MARGIN)

    def _most(self, missing: int) -> int:
        """How many keys one listing asks for."""
        return min(self.listing_keys, max(LISTED_AT_LEAST, LISTED_PER_MISSING * missing))

    def _window(
        self, prefix: str, start: str | None, start_time: float, end: str | None, most: int
    ) -> _Listing:
        """One listing of up to `most` keys from `start` (exclusive; None: the first key) towards
        `end` (exclusive)."""
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": most}
        if start is not None:
            arguments["StartAfter"] = start
        listing = self.s3.list_objects_v2(**arguments)
        listed = [item["Key"] for item in listing.get("Contents", [])]
        keys = [key for key in listed if (end is None or key < end) and key_time(key) is not None]
        passed_end = end is not None and bool(listed) and listed[-1] >= end
        complete = passed_end or not listing.get("IsTruncated")
        last = listed[-1] if listed else ""
        return _Listing(start, start_time, keys, complete, last, key_time(last) or start_time)

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


@dataclass(frozen=True)
class _Listing:
    start: str | None
    start_time: float
    keys: list[str]  # the log keys it gave below the window's end, oldest first
    complete: bool  # whether it reached the window's end
    last: str  # the last key it gave, whatever it is
    last_time: float


def _rate(keys: list[str]) -> float | None:
    """Keys per second across a run of keys in time order (None when they span no time)."""
    times = [t for t in (key_time(keys[0]), key_time(keys[-1])) if t is not None] if keys else []
    span = times[-1] - times[0] if len(times) == 2 else 0.0
    return len(keys) / span if span > 0 else None
