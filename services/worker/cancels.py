"""Which requests someone cancelled: the worker's view of the cancel markers (S3 `cancels/<id>`).

One LIST per batch was a third of what a request cost. Instead each worker process lists the markers
at most once per CANCEL_CHECK_SECONDS, and batches in between answer from what it saw. The guarantee:
a cancel stored more than CANCEL_CHECK_SECONDS before a worker takes the request is honoured (the
listing the batch answers from began after it was stored; S3 lists are strongly consistent); one
stored later may be computed anyway, as one that arrives while the request is computed always was.

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

    def among(self, ids: list[str]) -> set[str]:
        """Which of these requests someone cancelled. If S3 cannot tell, the requests are computed:
        a result nobody wanted costs less than a batch held back."""
        if not ids:
            return set()
        with self._lock:
            if self._floor is None or self._monotonic() - self._listed_at >= self.interval:
                self._list_recent()
            floor, cancelled = self._floor, self._cancelled
        covered = [i for i in ids if floor is not None and i > floor]
        older = [i for i in ids if floor is None or i <= floor]
        found = {i for i in covered if i in cancelled}
        if older:
            found |= self._listed(older)
        return found

    def _list_recent(self) -> None:
        """List the markers of the requests of the last `window` seconds (called under the lock)."""
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
            # What the last listing saw still holds; the next batch lists again.
            log.warning("cancel_check_failed", error=str(error))
            return
        self._cancelled, self._floor, self._listed_at = frozenset(found), floor, began

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
