"""AWS's documented limits, and the failures AWS may answer with, applied to each call.

Emulators accept what AWS refuses and never fail by themselves. These rules make them answer as AWS
does (each limit names its source) and inject, at configured rates or for a configured time, the
failures a client of AWS must survive: 5xx, throttling, S3's SlowDown, connection resets, and outages
of a whole service. A fault is injected either before the call reaches the emulator or after (the call
took effect but its answer is lost: the ambiguous case a client must also survive).
"""

from __future__ import annotations

import fnmatch
import random
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any

from harness.strict import wire

# --- AWS's limits, with where they are written --------------------------------------------------------

# SQS: a message, and a SendMessageBatch in all, at most 1,048,576 bytes (SQS API reference,
# SendMessage and MaximumMessageSize; raised from 256 KiB in August 2025). SNS: 256 KiB by default for
# a message and for a PublishBatch in all (SNS API reference, Publish; the topic attribute
# MaximumMessageSize may raise it, and this project does not).
SQS_MESSAGE_BYTES = 1_048_576
SNS_MESSAGE_BYTES = 262_144
# Every batch API: "maximum of 10 entries" (SQS SendMessageBatch, SNS PublishBatch API references).
BATCH_ENTRIES = 10
# ReceiveMessage WaitTimeSeconds 0-20, MaxNumberOfMessages 1-10; visibility at most 12 hours;
# DelaySeconds at most 15 minutes (SQS API reference).
MAX_WAIT_SECONDS = 20
MAX_RECEIVE_MESSAGES = 10
MAX_VISIBILITY_SECONDS = 43_200
MAX_DELAY_SECONDS = 900
TAG_APIS = {"TagQueue", "UntagQueue", "ListQueueTags"}


@dataclass
class Settings:
    """What the layer enforces and injects; PUT /_strict/settings changes any of them at run time."""

    # Latency added to every call, uniformly in this range (a call to a regional endpoint).
    latency_ms: tuple[float, float] = (10.0, 30.0)
    # Probability that a call fails, and per-API overrides ("sns:Publish*": 0.05; fnmatch patterns).
    fault_rate: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)
    fault_kinds: tuple[str, ...] = ("internal", "unavailable", "throttle", "reset")
    # Of the injected faults, the share applied after the call took effect.
    after_share: float = 0.25
    # At most this many random faults from when it is set (None: no bound): one exact fault for a test.
    max_random_faults: int | None = None
    # ListQueues without MaxResults answers at most 1,000 URLs (SQS API reference, ListQueues).
    list_queues_cap: int = 1000
    # DeleteQueue: "the deletion process takes up to 60 seconds", during which calls naming the queue
    # "might succeed" (SQS API reference); ListQueues is eventually consistent and keeps listing it.
    deleted_queue_listed_seconds: float = 60.0
    # "You must wait 60 seconds after deleting a queue before you can create another with the same
    # name" (SQS CreateQueue reference: QueueDeletedRecently).
    queue_deleted_recently_seconds: float = 60.0
    # "Tagging actions are limited to 5 TPS per AWS account" (SQS API reference for TagQueue,
    # UntagQueue and ListQueueTags until 2019; no figure is published now, so the old one is kept as a
    # conservative bound).
    tag_calls_per_second: float = 5.0
    # "After you create a queue, you must wait at least one second after the queue is created to be able
    # to use the queue" (SQS CreateQueue reference; what a call answers before then is not written:
    # QueueDoesNotExist is assumed). Calls naming a queue created less than this ago are refused so.
    new_queue_settle_seconds: float = 1.0
    # IAM is eventually consistent ("Changes that I make are not always immediately visible", IAM user
    # guide; no duration is published): a permission conditioned on a new queue's tags may be refused
    # for a while after the queue is created. An assumption, off by default: sends to queues matching
    # the pattern that are younger than this are denied.
    authorization_delay_seconds: float = 0.0
    authorization_delay_pattern: str = "*-reply-*"
    seed: int | None = None

    def update(self, changes: dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        for name, value in changes.items():
            setattr(self, name, tuple(value) if isinstance(value, list) else value)

    def rate(self, api: str) -> float:
        for pattern, rate in self.rates.items():
            if fnmatch.fnmatchcase(api, pattern):
                return float(rate)
        return self.fault_rate


@dataclass(frozen=True)
class Fault:
    """What the layer does instead of (or after) forwarding: an error answer, or a reset connection."""

    kind: str  # "internal", "unavailable", "throttle", "reset", or "limit"
    reason: str
    phase: str  # "before" or "after"
    response: wire.Response | None = None  # None: reset the connection


@dataclass
class Outage:
    service: str
    until: float
    kind: str  # "unavailable" (503s) or "reset" (connections dropped)


class Rules:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings()
        self._lock = threading.Lock()
        self._random = random.Random(self.settings.seed)
        self._tag_tokens = self.settings.tag_calls_per_second
        self._tag_refilled = time.monotonic()
        self._created: dict[str, float] = {}  # queue name -> when it was created through the layer
        self._deleted: dict[str, tuple[float, str]] = {}  # queue name -> (when, its URL)
        self._tags: dict[str, dict[str, str]] = {}  # queue name -> its tags, as set through the layer
        self.outages: list[Outage] = []
        self._random_faults = 0  # drawn since max_random_faults was last set
        self.calls: dict[str, int] = {}
        self.faults: dict[str, int] = {}

    # --- run-time control ----------------------------------------------------------------------------------

    def configure(self, changes: dict[str, Any]) -> None:
        with self._lock:
            self.settings.update(changes)
            if "seed" in changes:
                self._random.seed(self.settings.seed)
            if "max_random_faults" in changes:
                self._random_faults = 0

    def start_outage(self, service: str, seconds: float, kind: str = "unavailable") -> None:
        if kind not in {"unavailable", "reset"}:
            raise ValueError("an outage's kind is unavailable or reset")
        with self._lock:
            self.outages.append(Outage(service, time.monotonic() + seconds, kind))

    def end_outages(self) -> None:
        with self._lock:
            self.outages.clear()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            active = [
                {"service": o.service, "kind": o.kind, "seconds_left": round(o.until - now, 1)}
                for o in self.outages
                if o.until > now
            ]
            return {"calls": dict(self.calls), "faults": dict(self.faults), "outages": active}

    def reset_stats(self) -> None:
        with self._lock:
            self.calls.clear()
            self.faults.clear()

    # --- per call ------------------------------------------------------------------------------------------

    def latency(self) -> float:
        low, high = self.settings.latency_ms
        with self._lock:
            return self._random.uniform(low, high) / 1000

    def before(self, call: wire.Call) -> Fault | None:
        """A fault to answer with instead of forwarding the call, if any."""
        with self._lock:
            self.calls[call.api] = self.calls.get(call.api, 0) + 1
            fault = self._outage(call) or self._limit(call) or self._stale(call)
            if fault is None:
                drawn = self._draw_fault(call)
                if drawn is not None and drawn.phase == "after":
                    call.after_fault = drawn  # the call goes through; its answer is lost
                else:
                    fault = drawn
            if fault is not None:
                self._count(call, fault)
            return fault

    def after(self, call: wire.Call, response: wire.Response) -> wire.Response | Fault:
        """The answer to relay: the emulator's, reshaped as AWS would answer, or a fault after the fact."""
        with self._lock:
            if call.service == "sqs" and response.status == 200:
                self._remember(call)
                if call.operation == "ListQueues":
                    response = self._list_queues(call, response)
            fault = call.after_fault
            if fault is not None:
                self._count(call, fault)
                return fault
            return response

    def forwarded_body(self, call: wire.Call) -> bytes:
        """The body sent on: ListQueues is paginated here, so the emulator is asked for every queue."""
        if call.service == "sqs" and call.operation == "ListQueues":
            params = {k: v for k, v in call.params.items() if k not in ("MaxResults", "NextToken")}
            return wire.json.dumps(params).encode()
        return call.body

    # --- the rules ---------------------------------------------------------------------------------------

    def _count(self, call: wire.Call, fault: Fault) -> None:
        key = f"{call.api} {fault.kind} {fault.phase}"
        self.faults[key] = self.faults.get(key, 0) + 1

    def _outage(self, call: wire.Call) -> Fault | None:
        now = time.monotonic()
        self.outages = [outage for outage in self.outages if outage.until > now]
        for outage in self.outages:
            if outage.service == call.service:
                reason = f"{call.service} outage ({outage.until - now:.0f} s left)"
                if outage.kind == "reset":
                    return Fault("reset", reason, "before")
                return Fault(
                    "unavailable", reason, "before", wire.error_response(call, wire.unavailable_error(call))
                )
        return None

    def _limit(self, call: wire.Call) -> Fault | None:
        problem = self._sqs_limit(call) if call.service == "sqs" else None
        if call.service == "sns":
            problem = self._sns_limit(call)
        if problem is None:
            return None
        error, reason = problem
        return Fault("limit", reason, "before", wire.error_response(call, error))

    def _sqs_limit(self, call: wire.Call) -> tuple[wire.Error, str] | None:
        params, operation = call.params, call.operation
        if operation in TAG_APIS and not self._take_tag_token():
            return wire.throttling_error(call), f"tag calls over {self.settings.tag_calls_per_second:g}/s"
        if operation == "CreateQueue":
            deleted = self._deleted.get(params.get("QueueName", ""))
            if deleted and time.monotonic() - deleted[0] < self.settings.queue_deleted_recently_seconds:
                message = (
                    "You must wait 60 seconds after deleting a queue before you can create another with "
                    "the same name."
                )
                return wire.sqs_error(
                    "QueueDeletedRecently", message, "AWS.SimpleQueueService.QueueDeletedRecently"
                ), "queue deleted less than 60 s ago"
        name = wire.queue_name(call)
        created = self._created.get(name)
        if (
            operation != "CreateQueue"
            and created is not None
            and time.monotonic() - created < self.settings.new_queue_settle_seconds
        ):
            return wire.sqs_error(
                "QueueDoesNotExist",
                "The specified queue does not exist.",
                "AWS.SimpleQueueService.NonExistentQueue",
            ), "queue created less than a second ago"
        if operation == "ReceiveMessage":
            if int(params.get("WaitTimeSeconds", 0)) > MAX_WAIT_SECONDS:
                message = "Value for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20."
                return wire.invalid_parameter(message), "wait over 20 s"
            if int(params.get("MaxNumberOfMessages", 1)) > MAX_RECEIVE_MESSAGES:
                message = (
                    "Value for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10."
                )
                return wire.invalid_parameter(message), "more than 10 messages"
        if operation in ("ChangeMessageVisibility", "ChangeMessageVisibilityBatch"):
            timeouts = [params.get("VisibilityTimeout", 0)] + [
                e.get("VisibilityTimeout", 0) for e in params.get("Entries", [])
            ]
            if max(int(t) for t in timeouts) > MAX_VISIBILITY_SECONDS:
                return wire.invalid_parameter("VisibilityTimeout over 12 hours"), "visibility over 12 h"
        if operation.endswith("Batch"):
            entries = params.get("Entries", [])
            if len(entries) > BATCH_ENTRIES:
                return wire.sqs_error(
                    "TooManyEntriesInBatchRequest",
                    f"Maximum number of entries per request are {BATCH_ENTRIES}.",
                    "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
                ), "over 10 entries"
        if operation in ("SendMessage", "SendMessageBatch"):
            return self._sqs_send_limit(call)
        return None

    def _sqs_send_limit(self, call: wire.Call) -> tuple[wire.Error, str] | None:
        entries = call.params.get("Entries") if call.operation == "SendMessageBatch" else [call.params]
        sizes = [_sqs_message_bytes(entry) for entry in entries or []]
        delays = [int(entry.get("DelaySeconds", 0)) for entry in entries or []]
        if delays and max(delays) > MAX_DELAY_SECONDS:
            return wire.invalid_parameter("DelaySeconds over 900"), "delay over 900 s"
        if call.operation == "SendMessage" and sizes and sizes[0] > SQS_MESSAGE_BYTES:
            message = (
                "One or more parameters are invalid. Reason: Message must be shorter than "
                f"{SQS_MESSAGE_BYTES} bytes."
            )
            return wire.invalid_parameter(message), f"message of {sizes[0]} bytes"
        if call.operation == "SendMessageBatch" and sum(sizes) > SQS_MESSAGE_BYTES:
            message = (
                f"Batch requests cannot be longer than {SQS_MESSAGE_BYTES} bytes. "
                f"You have sent {sum(sizes)} bytes."
            )
            return wire.sqs_error(
                "BatchRequestTooLong", message, "AWS.SimpleQueueService.BatchRequestTooLong"
            ), f"batch of {sum(sizes)} bytes"
        name = wire.queue_name(call)
        created = self._created.get(name)
        delay = self.settings.authorization_delay_seconds
        if (
            created is not None
            and time.monotonic() - created < delay
            and fnmatch.fnmatchcase(name, self.settings.authorization_delay_pattern)
        ):
            message = "User is not authorized to perform: sqs:sendmessage (tag condition not yet visible)"
            return wire.access_denied(message), f"queue created less than {delay:g} s ago"
        return None

    def _sns_limit(self, call: wire.Call) -> tuple[wire.Error, str] | None:
        if call.operation == "Publish":
            size = len(call.params.get("Message", "").encode()) + _sns_attribute_bytes(call.params, "")
            if size > SNS_MESSAGE_BYTES:
                return wire.Error(400, "InvalidParameter", "Invalid parameter: Message too long"), "too long"
        if call.operation == "PublishBatch":
            entries = _sns_batch_entries(call.params)
            if len(entries) > BATCH_ENTRIES:
                message = f"The batch request contains more entries than permissible ({BATCH_ENTRIES})."
                return wire.Error(400, "TooManyEntriesInBatchRequest", message), "over 10 entries"
            total = sum(len(entry.get("Message", "").encode()) for entry in entries)
            if total > SNS_MESSAGE_BYTES:
                message = "The length of all the messages put together is more than the limit."
                return wire.Error(400, "BatchRequestTooLong", message), f"batch of {total} bytes"
        return None

    def _stale(self, call: wire.Call) -> Fault | None:
        """A queue deleted moments ago still answers some calls (DeleteQueue: requests "might succeed"
        during the deletion): its tags, as they were, so that a caller lists it and then finds it gone."""
        if call.service != "sqs" or call.operation != "ListQueueTags":
            return None
        name = wire.queue_name(call)
        deleted = self._deleted.get(name)
        if deleted is None or time.monotonic() - deleted[0] > self.settings.deleted_queue_listed_seconds:
            return None
        answer = wire.json_response({"Tags": self._tags.get(name, {})}, {})
        return Fault("stale", "a deleted queue's tags, as before its deletion", "before", answer)

    def _take_tag_token(self) -> bool:
        """A token bucket refilled at the documented rate, shared by every caller (it is per account)."""
        now = time.monotonic()
        rate = self.settings.tag_calls_per_second
        self._tag_tokens = min(rate, self._tag_tokens + (now - self._tag_refilled) * rate)
        self._tag_refilled = now
        if self._tag_tokens >= 1:
            self._tag_tokens -= 1
            return True
        return False

    def _draw_fault(self, call: wire.Call) -> Fault | None:
        """Draw once per call whether it fails, how, and whether before or after it takes effect."""
        rate = self.settings.rate(call.api)
        budget = self.settings.max_random_faults
        if rate <= 0 or (budget is not None and self._random_faults >= budget):
            return None
        if self._random.random() >= rate:
            return None
        self._random_faults += 1
        phase = "after" if self._random.random() < self.settings.after_share else "before"
        kind = self._random.choice(self.settings.fault_kinds)
        reason = f"random {rate:.2%}"
        if kind == "reset":
            return Fault("reset", reason, phase)
        error = {"internal": wire.internal_error, "unavailable": wire.unavailable_error}.get(
            kind, wire.throttling_error
        )(call)
        return Fault(kind, reason, phase, wire.error_response(call, error))

    def _remember(self, call: wire.Call) -> None:
        name = wire.queue_name(call)
        if call.operation == "CreateQueue":
            self._created.setdefault(name, time.monotonic())
            self._deleted.pop(name, None)
            self._tags.setdefault(name, dict(call.params.get("tags") or {}))
        elif call.operation == "TagQueue":
            self._tags.setdefault(name, {}).update(call.params.get("Tags") or {})
        elif call.operation == "DeleteQueue":
            self._created.pop(name, None)
            self._deleted[name] = (time.monotonic(), call.params["QueueUrl"])

    def _list_queues(self, call: wire.Call, response: wire.Response) -> wire.Response:
        urls = wire.json.loads(response.body or b"{}").get("QueueUrls", [])
        prefix = call.params.get("QueueNamePrefix", "")
        now = time.monotonic()
        listed = set(urls)
        for name, (when, url) in list(self._deleted.items()):
            if now - when > self.settings.deleted_queue_listed_seconds:
                continue
            if name.startswith(prefix) and url not in listed:
                urls.append(url)  # eventually consistent: still listed for a while
        urls.sort()
        if "MaxResults" not in call.params:
            return wire.json_response({"QueueUrls": urls[: self.settings.list_queues_cap]}, response.headers)
        start = int(str(call.params.get("NextToken") or "strict-0").removeprefix("strict-"))
        end = start + int(call.params["MaxResults"])
        document: dict[str, Any] = {"QueueUrls": urls[start:end]}
        if end < len(urls):
            document["NextToken"] = f"strict-{end}"
        return wire.json_response(document, response.headers)


def _sqs_message_bytes(entry: dict[str, Any]) -> int:
    """A message's size as SQS counts it: the body plus each attribute's name, type and value."""
    size = len(str(entry.get("MessageBody", "")).encode())
    for name, attribute in (entry.get("MessageAttributes") or {}).items():
        value = attribute.get("StringValue") or attribute.get("BinaryValue") or ""
        size += len(name.encode()) + len(attribute.get("DataType", "").encode()) + len(str(value).encode())
    return size


def _sns_batch_entries(form: dict[str, str]) -> list[dict[str, str]]:
    entries: dict[int, dict[str, str]] = {}
    for key, value in form.items():
        parts = key.split(".")
        if len(parts) >= 4 and parts[0] == "PublishBatchRequestEntries" and parts[2].isdigit():
            entries.setdefault(int(parts[2]), {})[".".join(parts[3:])] = value
    return [entries[index] for index in sorted(entries)]


def _sns_attribute_bytes(form: dict[str, str], prefix: str) -> int:
    return sum(
        len(value.encode())
        for key, value in form.items()
        if key.startswith(f"{prefix}MessageAttributes.") and not key.endswith(".DataType")
    )
