"""Accounts' secrets (qcompute/accounts.py): stored only as hashes, checked without telling too much."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from qcompute import accounts


def _account(name: str, *tokens: accounts.Token) -> accounts.Account:
    return accounts.Account(name, accounts.hash_password("a-long-enough-password"), tokens=tokens)


def test_a_token_finds_its_account_until_it_expires() -> None:
    secret = "S" * 43
    now = datetime.now(UTC)
    token = accounts.Token("0123abcd", hashlib.sha256(secret.encode()).hexdigest(), now.isoformat(), None)
    expiring = accounts.Token(
        "4567cdef", token.sha256, now.isoformat(), (now + timedelta(hours=1)).isoformat()
    )
    known = {"alice": _account("alice", token), "bob": _account("bob", expiring)}
    assert accounts.token_owner(known, f"qc_0123abcd_{secret}").name == "alice"
    assert accounts.token_owner(known, f"qc_4567cdef_{secret}", now).name == "bob"
    assert accounts.token_owner(known, f"qc_4567cdef_{secret}", now + timedelta(hours=2)) is None
    for wrong in (f"qc_0123abcd_{'T' * 43}", f"qc_99999999_{secret}", "qc_0123abcd_short", "", secret):
        assert accounts.token_owner(known, wrong) is None


def test_passwords_are_stored_as_scrypt_hashes_and_checked() -> None:
    account = _account("alice")
    assert account.password.startswith("scrypt:")
    assert "a-long-enough-password" not in account.to_json()
    assert accounts.password_matches(account, "a-long-enough-password")
    assert not accounts.password_matches(account, "a-long-enough-passwordX")
    assert not accounts.password_matches(None, "a-long-enough-password")  # unknown name: same work, False
    with pytest.raises(accounts.AccountError, match="at least 12 characters"):
        accounts.hash_password("short")


def test_a_new_password_changes_the_session_stamp() -> None:
    assert _account("alice").session_stamp != _account("alice").session_stamp  # salted: new hash each time


@pytest.mark.parametrize("name", ["Alice", "-a", "a/b", "", "a" * 64, "al ice"])
def test_account_names_are_safe_in_keys(name: str) -> None:
    with pytest.raises(accounts.AccountError, match="not a valid account name"):
        accounts.check_name(name)
