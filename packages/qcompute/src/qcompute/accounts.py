"""Accounts: who may use a stack whose access mode is `accounts`, stored in SSM Parameter Store.

One SecureString parameter per account, `/qcompute/<stack>/accounts/<name>`, holding JSON: the
password's scrypt hash (Werkzeug's), whether the account is an admin, and its API tokens' SHA-256
hashes. A password or token is shown once, when it is made, and stored only as its hash; nothing here
logs one. A token is `qc_<id>_<secret>`: the id finds its entry, the secret (256 random bits, so a
fast hash is enough) proves it. `scripts/users` and `scripts/deploy` write; the frontend only reads,
all accounts at once (GetParametersByPath), and keeps them for a few seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from werkzeug.security import check_password_hash, generate_password_hash

from qcompute.aws import error_code
from qcompute.contract import USER_NAME
from qcompute.names import StackNames

TOKEN = re.compile(r"^qc_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")
# A standard parameter holds 4 KB: a password hash and ten tokens fit with room to spare.
MAX_TOKENS = 10
MIN_PASSWORD_LENGTH = 12
# Checked against when a name is unknown, so a sign-in for a missing account takes as long as one
# with a wrong password (no user enumeration by timing).
_DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A command-line mistake: a bad name, an unknown account, a password too short."""


# What Account.from_json raises on a value that is not an account's JSON (json's errors are ValueErrors).
_UNREADABLE = (ValueError, TypeError, AttributeError)


@dataclass(frozen=True)
class Token:
    id: str
    sha256: str
    created: str
    expires: str | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and datetime.fromisoformat(self.expires) <= now


@dataclass(frozen=True)
class Account:
    name: str
    password: str  # the hash
    admin: bool = False
    created: str = ""
    tokens: tuple[Token, ...] = field(default_factory=tuple)

    @property
    def session_stamp(self) -> str:
        """Changes when the password does: a session signed before a reset is no longer accepted."""
        return hashlib.sha256(self.password.encode()).hexdigest()[:16]

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("name")
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, name: str, text: str) -> Account:
        data = json.loads(text)
        tokens = tuple(Token(**token) for token in data.pop("tokens", []))
        return cls(name=name, tokens=tokens, **data)


def check_name(name: str) -> str:
    if not USER_NAME.fullmatch(name):
        raise AccountError(
            f"{name!r} is not a valid account name: 1 to 63 of a-z, 0-9, '_', '.', '-', starting with a "
            "letter or digit"
        )
    return name


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return generate_password_hash(password)


def new_password() -> str:
    return secrets.token_urlsafe(15)  # 20 characters, 120 random bits


def password_matches(account: Account | None, password: str) -> bool:
    """Constant work whether or not the account exists."""
    if account is None:
        check_password_hash(_DUMMY_HASH, password)
        return False
    return check_password_hash(account.password, password)


def token_owner(accounts: dict[str, Account], token: str, now: datetime | None = None) -> Account | None:
    """The account a bearer token belongs to, if the token is known, unrevoked and unexpired."""
    match = TOKEN.match(token)
    if match is None:
        return None
    token_id, secret = match.groups()
    digest = _sha256(secret)
    now = now or datetime.now(UTC)
    for account in accounts.values():
        for known in account.tokens:
            if known.id == token_id and hmac.compare_digest(known.sha256, digest) and not known.expired(now):
                return account
    return None


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class AccountStore:
    """The stack's accounts in SSM. Every write replaces one account's whole parameter."""

    def __init__(self, ssm: Any, names: StackNames) -> None:
        self.ssm = ssm
        self.names = names
        self.prefix = names.accounts_path + "/"
        # Parameters under the path that hold no account (written by hand, or damaged), as the last
        # load found them: left out, so that one of them cannot fail every sign-in.
        self.unreadable: list[str] = []

    def load(self) -> dict[str, Account]:
        accounts, unreadable = {}, []
        pages = self.ssm.get_paginator("get_parameters_by_path").paginate(
            Path=self.names.accounts_path, Recursive=False, WithDecryption=True
        )
        for page in pages:
            for parameter in page["Parameters"]:
                name = parameter["Name"].removeprefix(self.prefix)
                try:
                    accounts[name] = Account.from_json(name, parameter["Value"])
                except _UNREADABLE:
                    unreadable.append(parameter["Name"])
        self.unreadable = unreadable
        return accounts

    def get(self, name: str) -> Account:
        try:
            found = self.ssm.get_parameter(Name=self.prefix + check_name(name), WithDecryption=True)
        except ClientError as error:
            if error_code(error) == "ParameterNotFound":
                raise AccountError(f"there is no account {name!r}") from None
            raise
        try:
            return Account.from_json(name, found["Parameter"]["Value"])
        except _UNREADABLE:
            raise AccountError(
                f"the parameter {self.prefix}{name} holds no valid account: `scripts/users remove {name}`"
            ) from None

    def _put(self, account: Account, *, new: bool) -> None:
        arguments: dict[str, Any] = {
            "Name": self.prefix + account.name,
            "Value": account.to_json(),
            "Type": "SecureString",
            "Overwrite": not new,
        }
        if new:  # SSM refuses tags together with Overwrite
            arguments["Description"] = f"qcompute account {account.name}, stack {self.names.stack}"
            arguments["Tags"] = [{"Key": key, "Value": value} for key, value in self.names.tags.items()]
        try:
            self.ssm.put_parameter(**arguments)
        except ClientError as error:
            if error_code(error) == "ParameterAlreadyExists":
                raise AccountError(f"there is already an account {account.name!r}") from None
            raise

    def create(self, name: str, *, admin: bool = False, password: str | None = None) -> tuple[Account, str]:
        """A new account and its password (generated unless given), to be shown once."""
        password = password or new_password()
        account = Account(check_name(name), hash_password(password), admin=admin, created=_now())
        self._put(account, new=True)
        return account, password

    def set_password(self, name: str, password: str | None = None) -> str:
        """A new password; every session of the account ends with the old one."""
        password = password or new_password()
        self._put(replace(self.get(name), password=hash_password(password)), new=False)
        return password

    def set_admin(self, name: str, admin: bool) -> None:
        self._put(replace(self.get(name), admin=admin), new=False)

    def remove(self, name: str) -> None:
        """Delete the account's parameter, also one that holds no valid account."""
        try:
            self.ssm.delete_parameter(Name=self.prefix + check_name(name))
        except ClientError as error:
            if error_code(error) == "ParameterNotFound":
                raise AccountError(f"there is no account {name!r}") from None
            raise

    def add_token(self, name: str, *, days: int | None = None) -> tuple[Token, str]:
        """A new API token for the account, valid for `days` (or until revoked), to be shown once."""
        account = self.get(name)
        if len(account.tokens) >= MAX_TOKENS:
            raise AccountError(f"{name!r} has {MAX_TOKENS} tokens already; revoke one first")
        token_id, secret = secrets.token_hex(4), secrets.token_urlsafe(32)
        expires = (
            None if days is None else (datetime.now(UTC) + timedelta(days=days)).isoformat(timespec="seconds")
        )
        token = Token(token_id, _sha256(secret), _now(), expires)
        self._put(replace(account, tokens=(*account.tokens, token)), new=False)
        return token, f"qc_{token_id}_{secret}"

    def revoke_token(self, token_id: str) -> str:
        """Remove the token with this id (the part after `qc_`); the name of its account."""
        for account in self.load().values():
            kept = tuple(token for token in account.tokens if token.id != token_id)
            if len(kept) < len(account.tokens):
                self._put(replace(account, tokens=kept), new=False)
                return account.name
        raise AccountError(f"there is no token with id {token_id!r}")
