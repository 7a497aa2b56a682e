"""Manage who may use a stack whose access mode is `accounts`: accounts, admins and API tokens.

    scripts/users add NAME [--admin] [--stdin]   a new account; prints its generated password once
    scripts/users password NAME [--stdin]        a new password, printed once (or one read from stdin)
    scripts/users admin NAME --on|--off          make the account an admin, or no longer one
    scripts/users remove NAME [--yes]            delete the account and its tokens (asks first)
    scripts/users list                           names, admins, creation dates, token ids and expiry
    scripts/users token add NAME [--days N]      a new API token for the account, printed once
    scripts/users token revoke ID                revoke a token by its id (the 8 hex digits after qc_)

Every command takes --stack and --region (default: $STACK_NAME, $AWS_REGION); AWS_ENDPOINT_URL points
at an emulator. Accounts are SecureString parameters in SSM (qcompute/accounts.py) holding only hashes.

A new password or token is written to standard output, alone on its line, once; what goes with it
goes to standard error, so `scripts/users token add ci > ci-token` keeps just the token. Nothing
secret is logged or sent to AWS, and none is ever taken as an argument: --stdin reads a password
from standard input (from the terminal without echo, asking twice). Exit status: 0 done, 1 refused or
failed (unknown account, a name taken, no such token, AWS), 2 bad usage (a bad name, a short password).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import re
import sys
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError

from qcompute import accounts, aws, local
from qcompute.accounts import AccountError, AccountStore
from qcompute.deploy.session import explain
from qcompute.settings import ConfigError, StackSettings

TOKEN_ID = re.compile(r"^(?:qc_)?([0-9a-f]{8})$")
MAX_TOKEN_DAYS = 3650


class UsageError(Exception):
    """Bad input found after parsing (a password read from stdin): exit status 2."""


def _name(value: str) -> str:
    try:
        return accounts.check_name(value)
    except AccountError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _days(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_TOKEN_DAYS:
        raise argparse.ArgumentTypeError(f"must be a whole number of days from 1 to {MAX_TOKEN_DAYS}")
    return int(value)


def _token_id(value: str) -> str:
    match = TOKEN_ID.match(value.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            "a token id is the 8 hex digits after qc_ (scripts/users list shows them); never the token"
        )
    return match.group(1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/users",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--stack", help="stack name (default: $STACK_NAME)")
    where.add_argument("--region", help="AWS region (default: $AWS_REGION)")
    where.add_argument("--local", action="store_true", help="the local stack (LocalStack on this machine)")
    stdin = argparse.ArgumentParser(add_help=False)
    stdin.add_argument(
        "--stdin",
        action="store_true",
        help=f"read the password (at least {accounts.MIN_PASSWORD_LENGTH} characters) from standard "
        "input instead of generating one",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="{add,password,admin,remove,list,token}"
    )
    add = commands.add_parser(
        "add", parents=[where, stdin], help="create an account; prints its password once"
    )
    add.add_argument("name", type=_name)
    add.add_argument("--admin", action="store_true", help="may see every request, the status page and DLQs")
    password = commands.add_parser(
        "password", parents=[where, stdin], help="give an account a new password; its sessions end"
    )
    password.add_argument("name", type=_name)
    admin = commands.add_parser("admin", parents=[where], help="make an account an admin or not")
    admin.add_argument("name", type=_name)
    switch = admin.add_mutually_exclusive_group(required=True)
    switch.add_argument("--on", dest="admin", action="store_true", help="make it an admin")
    switch.add_argument("--off", dest="admin", action="store_false", help="no longer an admin")
    remove = commands.add_parser("remove", parents=[where], help="delete an account and its tokens")
    remove.add_argument("name", type=_name)
    remove.add_argument("--yes", action="store_true", help="remove without asking")
    commands.add_parser("list", parents=[where], help="the accounts and their tokens (never a secret)")
    token = commands.add_parser("token", help="API tokens: add, revoke")
    tokens = token.add_subparsers(dest="on_tokens", required=True, metavar="{add,revoke}")
    token_add = tokens.add_parser("add", parents=[where], help="a new API token for an account, shown once")
    token_add.add_argument("name", type=_name)
    token_add.add_argument("--days", type=_days, help="valid for this many days (default: until revoked)")
    token_revoke = tokens.add_parser("revoke", parents=[where], help="revoke a token by its id")
    token_revoke.add_argument("id", type=_token_id, help="the 8 hex digits after qc_ (see list)")
    return parser


def _tell(line: str) -> None:
    """What goes with a secret: to standard error, so standard output holds the secret alone."""
    print(line, file=sys.stderr, flush=True)


def _show_secret(secret: str) -> None:
    print(secret, flush=True)


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("New password: ")
        if getpass.getpass("The same again: ") != first:
            raise UsageError("the two passwords differ; nothing changed")
        password = first
    else:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if len(password) < accounts.MIN_PASSWORD_LENGTH:
        raise UsageError(
            f"a password needs at least {accounts.MIN_PASSWORD_LENGTH} characters; nothing changed"
        )
    return password


def _check_stack(clients: aws.Clients) -> None:
    """Accounts of a stack that does not exist would wait for it unseen: refuse a mistyped --stack."""
    names = clients.names
    try:
        aws.queue_url(clients.sqs, names.requests_queue)
    except ClientError as error:
        if not aws.is_missing_queue(error):
            raise
        where = os.environ.get("AWS_ENDPOINT_URL") or names.region
        raise AccountError(
            f"there is no stack {names.stack!r} in {where} (no queue {names.requests_queue}): check "
            "--stack and --region, or deploy it first (scripts/deploy up)"
        ) from None


def _when(stamp: str | None) -> str:
    return stamp.replace("+00:00", "Z") if stamp else "never"


def _list(store: AccountStore) -> None:
    found = store.load()
    for parameter in store.unreadable:
        name = parameter.removeprefix(store.prefix)
        _tell(f"warning: {parameter} holds no valid account, nobody signs in with it: remove {name}")
    if not found:
        print(f"no accounts in stack {store.names.stack!r}: scripts/users add NAME --admin")
        return
    now = datetime.now(UTC)
    rows = [("account", "admin", "created", "tokens")]
    for name in sorted(found):
        account = found[name]
        tokens = [
            f"{token.id} (created {_when(token.created)}, expires {_when(token.expires)}"
            f"{', expired' if token.expired(now) else ''})"
            for token in account.tokens
        ] or ["-"]
        rows.append((name, "yes" if account.admin else "no", _when(account.created), tokens[0]))
        rows += [("", "", "", more) for more in tokens[1:]]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3])


def _confirm_removal(name: str, stack: str) -> bool:
    try:
        answer = input(f"Remove account {name!r} of stack {stack!r} and its tokens? Type the account name: ")
    except EOFError:
        answer = ""
    return answer.strip() == name


def _run(args: argparse.Namespace, store: AccountStore) -> int:
    stack = store.names.stack
    if args.command == "add":
        given = _read_password() if args.stdin else None
        account, password = store.create(args.name, admin=args.admin, password=given)
        role = "an admin" if account.admin else "not an admin"
        if given is None:
            _tell(f"account {account.name!r} created in stack {stack!r} ({role}); its password, shown once:")
            _show_secret(password)
        else:
            print(f"account {account.name!r} created in stack {stack!r} ({role}) with the password given")
    elif args.command == "password":
        given = _read_password() if args.stdin else None
        password = store.set_password(args.name, given)
        ended = "sessions signed in with the old one end"
        if given is None:
            _tell(f"new password of {args.name!r} ({ended}), shown once:")
            _show_secret(password)
        else:
            print(f"password of {args.name!r} changed ({ended})")
    elif args.command == "admin":
        store.set_admin(args.name, args.admin)
        print(f"{args.name!r} is {'now' if args.admin else 'no longer'} an admin of stack {stack!r}")
    elif args.command == "remove":
        # An unknown name is refused before asking; a damaged account can still be removed.
        if args.name not in store.load() and store.prefix + args.name not in store.unreadable:
            raise AccountError(f"there is no account {args.name!r}")
        if not args.yes and not _confirm_removal(args.name, stack):
            print("nothing removed")
            return 1
        store.remove(args.name)
        print(f"account {args.name!r} removed from stack {stack!r}, with its tokens")
    elif args.command == "list":
        _list(store)
    elif args.on_tokens == "add":
        token, secret = store.add_token(args.name, days=args.days)
        until = _when(token.expires) if token.expires else "revoked"
        _tell(
            f"token {token.id} for {args.name!r}, valid until {until}; send it as "
            "`Authorization: Bearer <token>`. Shown once:"
        )
        _show_secret(secret)
    else:
        owner = store.revoke_token(args.id)
        print(f"token {args.id} of {owner!r} revoked")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Only warnings: nothing this tool handles that is secret ever reaches a log call.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        if args.local:
            settings = local.stack_settings(args.stack, args.region)
        else:
            settings = StackSettings.from_options(args.stack, args.region)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        clients = aws.connect(settings, session=local.session(settings.region) if args.local else None)
        _check_stack(clients)
        return _run(args, AccountStore(clients.ssm, clients.names))
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except AccountError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as error:
        print(f"error: {explain(error, settings.region)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
