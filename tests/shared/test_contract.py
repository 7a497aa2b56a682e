"""The message contract: request ids, log keys and the decoding of every message kind."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from qcompute import contract

SECRET = b"a-secret-for-tests-only"


def test_request_ids_are_uuid7_carry_their_time_and_sort_by_it() -> None:
    first = contract.new_request_id(SECRET, now=1_700_000_000.123)
    second = contract.new_request_id(SECRET, now=1_700_000_000.124)
    assert uuid.UUID(first).version == 7
    assert contract.is_request_id(first)
    assert contract.request_time(first) == datetime.fromtimestamp(1_700_000_000.123, UTC)
    assert first < second


def test_ids_are_signed_so_any_frontend_knows_its_own() -> None:
    request_id = contract.new_request_id(SECRET)
    assert contract.is_signed_by(request_id, SECRET)
    assert not contract.is_signed_by(request_id, b"another-secret")
    tampered = request_id[:-1] + ("0" if request_id[-1] != "0" else "1")
    assert not contract.is_signed_by(tampered, SECRET)
    assert not contract.is_signed_by(str(uuid.uuid4()), SECRET)
    assert not contract.is_signed_by("../../etc/passwd", SECRET)


def test_log_key_comes_from_the_id_not_the_clock() -> None:
    request_id = contract.new_request_id(SECRET, now=datetime(2026, 1, 2, 23, 59, 59, tzinfo=UTC).timestamp())
    assert contract.log_key(request_id) == f"logs/2026/01/02/{request_id}.json"


def _request(**changes: object) -> str:
    document = contract.request_message(
        contract.new_request_id(SECRET),
        [1, 2],
        ["sum"],
        reply_to="http://queue",
        correlation_id="c1",
        submitted_at=contract.utc_now(),
    )
    document.update(changes)
    return json.dumps(document)


def test_a_request_decodes_to_its_fields() -> None:
    decoded = contract.decode_request(_request())
    assert decoded["numbers"] == [1, 2]
    assert decoded["operations"] == ["sum"]
    assert decoded["reply_to"] == "http://queue"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "not JSON"),
        ("", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"v": 1}', "invalid request id"),
        (_request(v=2), "unsupported contract version 2"),
        (_request(v="1"), "unsupported contract version '1'"),
        (_request(id="42"), "invalid request id"),
        (_request(correlation_id=None), "'correlation_id'"),
        (_request(submitted_at="yesterday"), "invalid submitted_at"),
        (_request(reply_to=17), "'reply_to'"),
        ("[" * 100_000, "not JSON"),
    ],
)
def test_malformed_requests_are_poison(body: str, reason: str) -> None:
    with pytest.raises(contract.MalformedMessage, match=reason):
        contract.decode_request(body)


def test_a_request_without_reply_queue_is_valid() -> None:
    assert contract.decode_request(_request(reply_to=None))["reply_to"] is None


def test_long_integer_literals_are_kept_as_text_when_decoding_requests() -> None:
    decoded = contract.decode_request(_request(numbers=[1]).replace("[1]", "[" + "7" * 50_000 + "]"))
    assert isinstance(decoded["numbers"][0], str)


def _record() -> dict:
    """The record of a request of [1, 2] asking for their sum."""
    return contract.result_record(
        contract.decode_request(_request()),
        numbers=[1, 2],
        operations=["sum"],
        results={"sum": 3},
        received_at=contract.utc_now(),
        computed_at=contract.utc_now(),
        worker="w1",
        attempt=1,
    )


def test_result_record_and_reply() -> None:
    record = _record()
    assert record["status"] == "done"
    assert record["timings"]["queued_ms"] >= 0
    reply = contract.reply_from_record(record)
    assert reply["request"] == {"count": 2, "operations": ["sum"]}
    assert contract.decode_result(contract.encode(reply))["results"] == {"sum": 3}
    with pytest.raises(contract.MalformedMessage, match="invalid status"):
        contract.decode_result(contract.encode({**record, "status": "maybe"}))


def test_a_stored_request_carries_only_its_own_payload_key() -> None:
    message = json.loads(_request())
    stored = contract.with_numbers_stored(message)
    assert "numbers" not in stored
    assert stored["count"] == 2
    assert stored["numbers_ref"] == contract.payload_key(message["id"], "request")
    assert stored["numbers_ref"].startswith("payloads/")
    assert stored["numbers_ref"].endswith("/request.json")
    assert contract.decode_request(json.dumps(stored))["numbers_ref"] == stored["numbers_ref"]
    # A forged message pointing at another object (someone's log, say) is poison.
    other = contract.log_key(contract.new_request_id(SECRET))
    with pytest.raises(contract.MalformedMessage, match="is not this request's payload"):
        contract.decode_request(json.dumps({**stored, "numbers_ref": other}))


def test_records_with_stored_results_are_checked_the_same_way() -> None:
    record = _record()
    stored = contract.with_results_stored(record)
    assert "results" not in stored
    assert contract.decode_result(json.dumps(stored))["results_ref"].endswith("/result.json")
    with pytest.raises(contract.MalformedMessage, match="not this request's result payload"):
        contract.decode_result(json.dumps({**stored, "results_ref": "logs/x.json"}))


def test_raw_json_is_spliced_verbatim() -> None:
    from qcompute.validation import read_integer

    long_number = "7" * 60
    document = json.loads('{"a": ' + long_number + ', "b": [1.5, "x"]}', parse_int=read_integer)
    document["c"] = contract.RawJSON("[1,2,3]")
    assert contract.encode_raw(document) == '{"a":' + long_number + ',"b":[1.5,"x"],"c":[1,2,3]}'


def test_an_id_is_signed_for_its_account_and_no_other() -> None:
    alices = contract.new_request_id(SECRET, user="alice")
    assert contract.is_signed_by(alices, SECRET, "alice")
    assert not contract.is_signed_by(alices, SECRET, "bob")
    assert not contract.is_signed_by(alices, SECRET)  # nor as an open stack's
    assert not contract.is_signed_by(contract.new_request_id(SECRET), SECRET, "alice")


@pytest.mark.parametrize("user", ["../logs", "Alice", "", 7, "a" * 64, "a/b"])
def test_a_request_naming_an_impossible_account_is_malformed(user) -> None:
    request_id = contract.new_request_id(SECRET)
    message = contract.request_message(
        request_id, [1], ["sum"], reply_to=None, correlation_id=request_id, submitted_at=contract.utc_now()
    )
    with pytest.raises(contract.MalformedMessage, match="invalid user"):
        contract.decode_request(contract.encode({**message, "user": user}))


def test_the_account_travels_from_request_to_record() -> None:
    request_id = contract.new_request_id(SECRET, user="alice")
    message = contract.request_message(
        request_id,
        [1],
        ["sum"],
        reply_to=None,
        correlation_id=request_id,
        submitted_at=contract.utc_now(),
        user="alice",
    )
    request = contract.decode_request(contract.encode(message))
    now = contract.utc_now()
    record = contract.result_record(
        request,
        numbers=[1],
        operations=["sum"],
        results={"sum": 1},
        received_at=now,
        computed_at=now,
        worker="w",
        attempt=1,
    )
    assert contract.decode_result(contract.encode(record))["user"] == "alice"
    assert contract.user_key("alice", request_id).startswith("users/alice/")
