"""Record every AWS call a process makes, as JSON lines in a file (the start-up hook calls `install`).

Each line names the service, the operation, when the call started (`t`, Unix seconds), the parameters
that name the resource it touches, any policy document it sends, and for the calls AWS bills by 64 KB
chunk (SendMessage, SendMessageBatch, ReceiveMessage, Publish, PublishBatch) the payload's `bytes`.
tests/shared/test_least_privilege.py compares the services' calls with the IAM policies;
tests/deploy/test_iam_lint.py lints every policy document `scripts/deploy` sends; the benchmark
(bench/calls.py) counts the calls of every process it starts and prices them.

Only botocore and the standard library here: the services import it at start-up.
"""

import json
import threading
import time

import botocore.client

_lock = threading.Lock()
_path: list[str] = []  # the file, once installed
# The parameters that name the resource a call touches (and the tags it sets).
_KEPT = (
    "QueueUrl",
    "QueueName",
    "TopicArn",
    "Bucket",
    "Key",
    "Delete",
    "tags",
    "Tags",
    "Prefix",
    "RoleName",
    "Path",  # SSM: a path of parameters, and a parameter's name (never its value)
    "Name",
)


def _policies(value, path):
    """Every policy document in a parameter, by where it sits (e.g. `Attributes.Policy`).

    Found by content, not by parameter name: each API names its policy differently
    (PolicyDocument, AssumeRolePolicyDocument, Policy, policyDocument, an attribute...).
    """
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if isinstance(value, dict):
        if "Statement" in value:
            return {path: value}
        items = value.items()
    elif isinstance(value, list):
        items = ((str(index), item) for index, item in enumerate(value))
    else:
        return {}
    return {found: doc for key, item in items for found, doc in _policies(item, f"{path}.{key}").items()}


def _length(value) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    return 0


def message_bytes(body, attributes=None) -> int:
    """A message's size as SQS and SNS bill it: the body, and each attribute's name, type and value."""
    size = _length(body)
    for name, attribute in (attributes or {}).items():
        size += _length(name)
        if isinstance(attribute, dict):
            size += _length(attribute.get("DataType"))
            size += _length(attribute.get("StringValue")) + _length(attribute.get("BinaryValue"))
    return size


def sent_bytes(operation: str, params: dict):
    """The payload a call sends, for the operations billed by 64 KB chunk; None for the others."""
    if operation == "SendMessage":
        return message_bytes(params.get("MessageBody"), params.get("MessageAttributes"))
    if operation == "Publish":
        return message_bytes(params.get("Message"), params.get("MessageAttributes"))
    entries = {
        "SendMessageBatch": ("Entries", "MessageBody"),
        "PublishBatch": ("PublishBatchRequestEntries", "Message"),
    }
    if operation in entries:
        key, body = entries[operation]
        return sum(message_bytes(e.get(body), e.get("MessageAttributes")) for e in params.get(key) or [])
    return None


def received_bytes(response) -> int:
    """The payload a ReceiveMessage answered with."""
    messages = (response.get("Messages") or []) if isinstance(response, dict) else []
    return sum(message_bytes(m.get("Body"), m.get("MessageAttributes")) for m in messages)


def _write(entry: dict) -> None:
    line = json.dumps(entry, default=str) + "\n"
    with _lock, open(_path[0], "a") as log:
        log.write(line)


def _recorded(original):
    def _make_api_call(client, operation_name, api_params):
        entry = {
            "service": client.meta.service_model.endpoint_prefix,
            "operation": operation_name,
            "t": round(time.time(), 4),
            "params": {k: v for k, v in api_params.items() if k in _KEPT},
        }
        policies = {
            found: document
            for name, value in api_params.items()
            for found, document in _policies(value, name).items()
        }
        if policies:
            entry["policies"] = policies
        size = sent_bytes(operation_name, api_params)
        if size is not None:
            entry["bytes"] = size
        response = None
        try:
            response = original(client, operation_name, api_params)
            return response
        finally:
            # Written when the call returns (or fails: a refused call is recorded too).
            if operation_name == "ReceiveMessage" and response is not None:
                entry["bytes"] = received_bytes(response)
            _write(entry)

    _make_api_call.records_aws_calls = True
    return _make_api_call


def install(path: str) -> None:
    """Record this process's boto calls (and its forked children's) in `path`, from now on."""
    _path[:] = [str(path)]
    current = botocore.client.BaseClient._make_api_call
    if not getattr(current, "records_aws_calls", False):
        botocore.client.BaseClient._make_api_call = _recorded(current)


def record_kombu() -> None:
    """Record kombu's asynchronous SQS calls too: they are signed by botocore but sent with pycurl.

    Celery's worker receives (and may delete) its messages that way. Call it after `install`.
    """
    from kombu.asynchronous.aws.sqs.connection import AsyncSQSConnection

    original = AsyncSQSConnection.make_request
    if getattr(original, "records_aws_calls", False):
        return

    def make_request(self, operation_name, params, queue_url, verb, callback=None, protocol_params=None):
        entry = {
            "service": "sqs",
            "operation": operation_name,
            "t": round(time.time(), 4),
            "params": {"QueueUrl": queue_url},
            "via": "kombu",
        }
        if operation_name == "SendMessage":
            entry["bytes"] = message_bytes(params.get("MessageBody"))
        elif operation_name == "SendMessageBatch":
            entry["bytes"] = sum(_length(v) for k, v in params.items() if k.endswith(".MessageBody"))
        _write(entry)
        return original(self, operation_name, params, queue_url, verb, callback, protocol_params)

    make_request.records_aws_calls = True
    AsyncSQSConnection.make_request = make_request
