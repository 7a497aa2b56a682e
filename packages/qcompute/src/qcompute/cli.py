"""Provision, inspect or remove a stack's messaging and storage from the command line.

    python -m qcompute.cli provision [--stack NAME] [--region REGION] [--local]
    python -m qcompute.cli plan      [--stack NAME] [--region REGION] [--local]
    python -m qcompute.cli remove    [--stack NAME] [--region REGION] [--local] [--yes]

`scripts/provision` and `scripts/teardown` call this; so does LocalStack's init hook. The endpoint is
AWS_ENDPOINT_URL when set (an emulator), real AWS otherwise; --local is the local stack (qcompute.local).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from qcompute import aws, local
from qcompute.provision import provision, remove
from qcompute.settings import ConfigError, StackSettings


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qcompute", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["provision", "plan", "remove"])
    parser.add_argument("--stack", help="stack name (default: $STACK_NAME)")
    parser.add_argument("--region", help="AWS region (default: $AWS_REGION)")
    parser.add_argument("--yes", action="store_true", help="remove without asking")
    parser.add_argument("--local", action="store_true", help="the local stack (LocalStack on this machine)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        if args.local:
            stack = local.stack_settings(args.stack, args.region)
        else:
            stack = StackSettings.from_options(args.stack, args.region)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    where = os.environ.get("AWS_ENDPOINT_URL") or f"AWS {stack.region}"
    if args.local:
        where = local.describe()
    try:
        clients = aws.connect(stack, session=local.session(stack.region) if args.local else None)
        if args.command == "remove" and not args.yes:
            answer = input(
                f"Remove every resource of stack {stack.stack!r} at {where}? Type the stack name: "
            )
            if answer.strip() != stack.stack:
                print("nothing removed")
                return 1
        print(f"{args.command} stack {stack.stack!r} at {where}")
        if args.command == "remove":
            changes = remove(clients)
        else:
            changes = provision(clients, dry_run=args.command == "plan")
    except NoCredentialsError:
        print(
            "error: no AWS credentials found; configure a profile or run on an instance with a role",
            file=sys.stderr,
        )
        return 1
    except (BotoCoreError, ClientError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for change in changes:
        print(f"  {change}")
    if not changes:
        print("  nothing to do")
    return 0


if __name__ == "__main__":
    sys.exit(main())
