"""Look into a stack's dead-letter queues, send their messages back, or empty them.

    python -m qcompute.dlq list                      counts and a line per message, both DLQs
    python -m qcompute.dlq show requests [--limit N] every message in full, with why it failed
    python -m qcompute.dlq redrive logs [--yes]      move the messages back to the queue they left
    python -m qcompute.dlq purge requests [--yes]    delete them all

`scripts/dlq` calls this. STACK_NAME and AWS_REGION (or --stack/--region) name the stack;
AWS_ENDPOINT_URL points at an emulator; --local is the local stack (qcompute.local). Redrive and purge
ask for the queue's name unless --yes.
Looking at messages leaves them in place (they are received with a zero visibility timeout).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from qcompute import aws, local
from qcompute.settings import ConfigError, StackSettings

PREVIEW_CHARACTERS = 120
# How long a received batch stays hidden. A receive whose answer was lost (botocore retried it) hides
# its messages this long: a redrive waits for them rather than stopping short.
RECEIVE_VISIBILITY_SECONDS = 30


def _queues(clients: aws.Clients, which: str) -> tuple[str, str]:
    """(dead-letter queue name, the queue its messages came from)."""
    names = clients.names
    return {
        "requests": (names.requests_dlq, names.requests_queue),
        "logs": (names.log_dlq, names.log_queue),
    }[which]


def _depth(clients: aws.Clients, url: str, *, hidden: bool = False) -> int:
    """Messages visible in the queue; with `hidden`, those received and not yet deleted as well."""
    names = ["ApproximateNumberOfMessages", *(["ApproximateNumberOfMessagesNotVisible"] if hidden else [])]
    attributes = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def peek(clients: aws.Clients, url: str, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` messages, left visible for others (a DLQ has no redrive to fear)."""
    seen: dict[str, dict[str, Any]] = {}
    # SQS returns a sample per call: a few passes, stopping as soon as one brings nothing new.
    for _ in range(1 + limit // 5):
        response = clients.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, limit),
            VisibilityTimeout=0,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        fresh = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
        if not fresh:
            break
        seen.update((m["MessageId"], m) for m in fresh)
        if len(seen) >= limit:
            break
    return list(seen.values())[:limit]


def _reason(message: dict[str, Any]) -> str:
    attribute = message.get("MessageAttributes", {}).get("poison_reason")
    if attribute:
        return f"poison: {attribute['StringValue']}"
    count = message.get("Attributes", {}).get("ApproximateReceiveCount", "?")
    return f"failed {count} deliveries (see the service logs for this message id)"


def _drain(clients: aws.Clients, url: str, limit: int | None) -> Iterator[list[dict[str, Any]]]:
    """Batches received for moving, each hidden while it is handled; then, once, those hidden by
    another receive (a lost answer, a failed send) when they come back."""
    moved = 0
    hidden_until: float | None = None
    while limit is None or moved < limit:
        batch_size = 10 if limit is None else min(10, limit - moved)
        response = clients.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=batch_size,
            VisibilityTimeout=RECEIVE_VISIBILITY_SECONDS,
            WaitTimeSeconds=1,
        )
        messages = response.get("Messages", [])
        if not messages:
            # Visible ones count too: the hidden may turn visible as we ask.
            if not _depth(clients, url, hidden=True):
                return
            hidden_until = hidden_until or time.monotonic() + RECEIVE_VISIBILITY_SECONDS + 5
            if time.monotonic() > hidden_until:
                return
            continue
        moved += len(messages)
        yield messages


def redrive(clients: aws.Clients, which: str, limit: int | None = None) -> int:
    """Send each message back to its source queue, then delete it from the DLQ; return how many."""
    dlq_name, source_name = _queues(clients, which)
    dlq, source = aws.queue_url(clients.sqs, dlq_name), aws.queue_url(clients.sqs, source_name)
    moved = 0
    for messages in _drain(clients, dlq, limit):
        entries = [{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(messages)]
        done = set()
        # Ten messages of up to 256 KiB each would overrun SQS's limit for a whole batch.
        for batch in aws.batches(entries, "MessageBody"):
            sent = clients.sqs.send_message_batch(QueueUrl=source, Entries=batch)
            done |= {entry["Id"] for entry in sent.get("Successful", [])}
        # Only what reached the source queue leaves the DLQ: a failed send stays put.
        deletions = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(messages)
            if str(i) in done
        ]
        if deletions:
            clients.sqs.delete_message_batch(QueueUrl=dlq, Entries=deletions)
        moved += len(deletions)
    return moved


def purge(clients: aws.Clients, which: str) -> int:
    dlq = aws.queue_url(clients.sqs, _queues(clients, which)[0])
    count = _depth(clients, dlq)
    clients.sqs.purge_queue(QueueUrl=dlq)
    return count


def _confirm(args: argparse.Namespace, name: str, what: str) -> bool:
    if args.yes:
        return True
    answer = input(f"{what} {name}? Type the queue name to confirm: ")
    return answer.strip() == name


def _print_list(clients: aws.Clients) -> None:
    for which in ("requests", "logs"):
        dlq_name, source_name = _queues(clients, which)
        url = aws.queue_url(clients.sqs, dlq_name)
        count = _depth(clients, url)
        print(f"{dlq_name}: {count} message(s) (from {source_name})")
        for message in peek(clients, url, 10):
            body = message["Body"].replace("\n", " ")
            preview = body if len(body) <= PREVIEW_CHARACTERS else body[:PREVIEW_CHARACTERS] + "..."
            print(f"  {message['MessageId']}  {_reason(message)}\n    {preview}")


def _print_show(clients: aws.Clients, which: str, limit: int) -> None:
    url = aws.queue_url(clients.sqs, _queues(clients, which)[0])
    for message in peek(clients, url, limit):
        attributes = {k: v.get("StringValue") for k, v in message.get("MessageAttributes", {}).items()}
        print(
            json.dumps(
                {
                    "message_id": message["MessageId"],
                    "why": _reason(message),
                    "attributes": attributes,
                    "body": message["Body"],
                },
                indent=2,
            )
        )


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/dlq", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["list", "show", "redrive", "purge"])
    parser.add_argument("queue", nargs="?", choices=["requests", "logs"], help="which dead-letter queue")
    parser.add_argument("--limit", type=int, help="at most this many messages (show: default 10)")
    parser.add_argument("--stack", help="stack name (default: $STACK_NAME)")
    parser.add_argument("--region", help="AWS region (default: $AWS_REGION)")
    parser.add_argument("--yes", action="store_true", help="do not ask before redrive or purge")
    parser.add_argument("--local", action="store_true", help="the local stack (LocalStack on this machine)")
    args = parser.parse_args(argv)
    if args.command != "list" and args.queue is None:
        parser.error(f"{args.command} needs a queue: requests or logs")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        if args.local:
            stack = local.stack_settings(args.stack, args.region)
            clients = aws.connect(stack, session=local.session(stack.region))
        else:
            clients = aws.connect(StackSettings.from_options(args.stack, args.region))
        if args.command == "list":
            _print_list(clients)
        elif args.command == "show":
            _print_show(clients, args.queue, args.limit or 10)
        else:
            name, source = _queues(clients, args.queue)
            if not _confirm(args, name, "Redrive every message of" if args.command == "redrive" else "Purge"):
                print("nothing changed")
                return 1
            if args.command == "redrive":
                print(f"moved {redrive(clients, args.queue, args.limit)} message(s) back to {source}")
            else:
                print(f"purged {name} ({purge(clients, args.queue)} message(s))")
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except NoCredentialsError:
        print("error: no AWS credentials found", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
