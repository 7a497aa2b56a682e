"""Which requests someone cancelled: the worker's view of the cancel markers (S3 `cancels/<id>`).

One LIST per batch was a third of what a request cost. Instead each worker process lists the markers
at most once per CANCEL_CHECK_SECONDS, and batches in between answer from what it saw. The guarantee:
a cancel stored more than CANCEL_CHECK_SECONDS before a worker takes the request is honoured (the
listing the batch answers from began after it was stored; S3 lists are strongly consistent); one
stored later may be computed anyway, as one that arrives while the request is computed always was.
While S3 fails the listing, it is not tried again for CANCEL_CHECK_SECONDS (at least a second) and
each batch lists its own markers meanwhile, as it used to: no loop waits behind another's retries.

Not a HEAD per request either: still a call per request, and on AWS a HEAD of a missing key answers
403, not 404, unless the role may list the bucket without a prefix condition (qcompute.iam): narrow
that grant and every cancel would silently read "not cancelled".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from qcompute import contract, logs

log = logs.get_logger("worker")

# The listing reads the markers of requests submitted this long before it, no older: the markers
# sort by submission time (contract.cancel_key), so it costs one LIST per 1,000 markers of that span
# however many older ones linger (a cancel that came too late stays until its lifecycle expiry). The
# frontend accepts a cancel only while the request is pending (PENDING_TIMEOUT_SECONDS, 600 s by
# default) and MAX_BACKLOG keeps the queue short, so almost every request a worker takes is younger;
# an older one (a backlog, a redrive from the dead-letter queue) gets a LIST of its own, as each batch did.
WINDOW_SECONDS = 900


class CancelMarkers:
    """The cancel markers a worker process saw, listed at most once per `interval` for all its loops."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        interval: float,
        *,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.s3, self.bucket, self.interval, self.window = s3, bucket, interval, window
        self._clock, self._monotonic = clock, monotonic
        # One listing at a time: the loops that need it meanwhile wait for it rather than list too.
        self._lock = threading.Lock()
        self._cancelled: frozenset[str] = frozenset()
        # The listing covers the ids above this one; None until a listing succeeds.
        self._floor: str | None = None
        self._listed_at = 0.0  # monotonic, when the last good listing began
        # After a failed listing, none before this (monotonic): in an S3 brown-out each attempt takes
        # botocore's retries, and loops waiting on it in turn would run one batch at a time.
        self._retry_at: float | None = None

    def among(self, ids: list[str]) -> set[str]:
        """Which of these requests someone cancelled. If S3 cannot tell, the requests are computed:
        a result nobody wanted costs less than a batch held back."""
        if not ids:
            return set()
        recent = self._recent()
        if recent is None:
            # The listing is stale because listings fail: this batch reads its own markers, so the
            # guarantee holds whenever S3 answers it, and no loop waits on another's retries.
            return self._listed(ids)
        floor, cancelled = recent
        covered = [i for i in ids if i > floor]
        older = [i for i in ids if i <= floor]
        found = {i for i in covered if i in cancelled}
        if older:
            found |= self._listed(older)
        return found

    def _recent(self) -> tuple[str, frozenset[str]] | None:
        """The last listing's floor and markers, listed again if older than `interval`; None while
        listings fail."""
        retry_at = self._retry_at  # read once: another loop may clear it meanwhile
        failing = retry_at is not None
        if retry_at is not None and self._monotonic() < retry_at:
            return None
        # While listings fail, one loop tries again and the others do not wait for it.
        if not self._lock.acquire(blocking=not failing):
            return None
        try:
            if self._floor is None or self._monotonic() - self._listed_at >= self.interval:
                # A loop that waited here on a listing that failed does not list again at once.
                backing_off = self._retry_at is not None and self._monotonic() < self._retry_at
                if backing_off or not self._list_recent():
                    return None
            floor = self._floor
            return None if floor is None else (floor, self._cancelled)
        finally:
            self._lock.release()

    def _list_recent(self) -> bool:
        """List the markers of the requests of the last `window` seconds (called under the lock);
        False if S3 did not answer."""
        began = self._monotonic()
        floor = contract.first_id_at(self._clock() - self.window)
        found: set[str] = set()
        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=contract.CANCEL_PREFIX, StartAfter=contract.cancel_key(floor)
            )
            for page in pages:
                found.update(item["Key"][len(contract.CANCEL_PREFIX) :] for item in page.get("Contents", []))
        except (BotoCoreError, ClientError) as error:
            # Logged once per failed listing; until the back-off ends, batches list their own markers.
            self._retry_at = self._monotonic() + max(self.interval, 1.0)
            log.warning("cancel_check_failed", error=str(error))
            return False
        self._cancelled, self._floor, self._listed_at, self._retry_at = frozenset(found), floor, began, None
        return True

    def _listed(self, ids: Iterable[str]) -> set[str]:
        """The markers of these requests, read apart from the cache: one LIST under the longest
        prefix their keys share (ids submitted close together share their leading time digits)."""
        keys = {contract.cancel_key(request_id): request_id for request_id in ids}
        low, high = min(keys), max(keys)
        prefix = low[: next((i for i, (a, b) in enumerate(zip(low, high, strict=False)) if a != b), len(low))]
        found: set[str] = set()
        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                found |= {keys[item["Key"]] for item in page.get("Contents", []) if item["Key"] in keys}
        except (BotoCoreError, ClientError) as error:
            log.warning("cancel_check_failed", error=str(error), requests=len(keys))
        return found
