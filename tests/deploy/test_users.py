"""scripts/users against the deploy tests' moto server: accounts and tokens made, listed, changed and
revoked; secrets shown once on standard output and nowhere else; mistakes refused with one line."""

from __future__ import annotations

import json
import logging

import pytest
from structlog.testing import capture_logs

from qcompute import accounts
from qcompute.accounts import AccountStore
from qcompute.deploy.infra import tag_dict
from qcompute.names import STACK_TAG
from qcompute.provision import provision
from qcompute.users import main as users_main


@pytest.fixture
def store(inspect, stack_name) -> AccountStore:
    """The accounts of a provisioned stack (queues, topic, bucket: what scripts/users looks for)."""
    deployment = inspect(stack_name)
    provision(deployment.clients)
    return AccountStore(deployment.ssm, deployment.names)


def _stored(store: AccountStore, name: str) -> dict:
    """The account's parameter as SSM holds it: its type, tags and (decrypted) value."""
    parameter_name = f"{store.names.accounts_path}/{name}"
    parameter = store.ssm.get_parameter(Name=parameter_name, WithDecryption=True)["Parameter"]
    tags = store.ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=parameter_name)
    return {"type": parameter["Type"], "tags": tag_dict(tags["TagList"]), "value": parameter["Value"]}


def _secret_alone(result) -> str:
    """The secret a command printed: standard output holds it alone, standard error does not."""
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    assert lines[0] not in result.stderr
    assert "shown once" in result.stderr.lower()
    return lines[0]


def test_accounts_and_tokens_from_creation_to_removal(users, store, stack_name) -> None:
    on = ("--stack", stack_name)
    password = _secret_alone(users("add", "alice", "--admin", *on))
    assert len(password) >= accounts.MIN_PASSWORD_LENGTH
    stored = _stored(store, "alice")
    assert stored["type"] == "SecureString"
    assert stored["tags"] == {STACK_TAG: stack_name}, "down finds it by its tag"
    assert password not in stored["value"]
    assert json.loads(stored["value"])["password"].startswith("scrypt:")
    assert accounts.password_matches(store.get("alice"), password)
    assert store.get("alice").admin

    token = _secret_alone(users("token", "add", "alice", "--days", "30", *on))
    token_id, token_secret = accounts.TOKEN.match(token).groups()
    assert token_secret not in _stored(store, "alice")["value"], "only its SHA-256 is kept"
    assert accounts.token_owner(store.load(), token).name == "alice"
    lasting = _secret_alone(users("token", "add", "alice", *on))

    listed = users("list", *on).stdout
    (row,) = [line for line in listed.splitlines() if line.startswith("alice")]
    assert row.split()[:2] == ["alice", "yes"]
    assert f"{token_id} (created " in listed
    assert f"{accounts.TOKEN.match(lasting).group(1)} (created " in listed
    assert "expires never" in listed
    account = store.get("alice")
    hashes = [account.password, *(known.sha256 for known in account.tokens)]
    for secret in (password, token, token_secret, lasting, *hashes):
        assert secret not in listed
    assert "scrypt" not in listed

    # A new password: the old one and the sessions signed with it (their stamp) are over.
    stamp = store.get("alice").session_stamp
    renewed = _secret_alone(users("password", "alice", *on))
    assert not accounts.password_matches(store.get("alice"), password)
    assert accounts.password_matches(store.get("alice"), renewed)
    assert store.get("alice").session_stamp != stamp
    # One of the user's own, read from standard input: nothing secret is printed.
    chosen = "correct horse battery staple"
    typed = users("password", "alice", "--stdin", *on, stdin=chosen + "\n")
    assert chosen not in typed.stdout + typed.stderr
    assert accounts.password_matches(store.get("alice"), chosen)
    assert not accounts.password_matches(store.get("alice"), renewed)

    users("admin", "alice", "--off", *on)
    assert not store.get("alice").admin
    assert users("list", *on).stdout.splitlines()[1].split()[:2] == ["alice", "no"]

    revoked = users("token", "revoke", token_id, *on)
    assert f"token {token_id} of 'alice' revoked" in revoked.stdout
    assert accounts.token_owner(store.load(), token) is None
    assert accounts.token_owner(store.load(), lasting).name == "alice", "the other token still works"
    assert token_id not in users("list", *on).stdout

    users("remove", "alice", "--yes", *on)
    assert store.load() == {}
    assert "no accounts in stack" in users("list", *on).stdout


def _refused(result, status: int, *words: str) -> None:
    assert result.returncode == status, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_mistakes_are_refused_and_change_nothing(users, store, stack_name) -> None:
    on = ("--stack", stack_name)
    _refused(users("add", "Bad Name", *on, ok=False), 2, "not a valid account name")
    _refused(users("add", "bob", "--stdin", *on, stdin="too short\n", ok=False), 2, "at least 12 characters")
    assert store.load() == {}

    users("add", "bob", *on)
    before = _stored(store, "bob")["value"]
    _refused(users("add", "bob", *on, ok=False), 1, "there is already an account 'bob'")
    _refused(users("password", "carol", *on, ok=False), 1, "there is no account 'carol'")
    _refused(users("password", "bob", "--stdin", *on, stdin="\n", ok=False), 2, "at least 12 characters")
    _refused(users("token", "add", "carol", *on, ok=False), 1, "there is no account 'carol'")
    _refused(users("token", "add", "bob", "--days", "0", *on, ok=False), 2, "from 1 to 3650")
    _refused(users("token", "revoke", "deadbeef", *on, ok=False), 1, "there is no token with id 'deadbeef'")
    _refused(users("token", "revoke", "qc_deadbeef_" + "x" * 43, *on, ok=False), 2, "never the token")
    _refused(users("admin", "bob", *on, ok=False), 2, "one of the arguments --on --off is required")
    _refused(users("remove", "carol", "--yes", *on, ok=False), 1, "there is no account 'carol'")
    kept = users("remove", "bob", *on, stdin="not bob\n", ok=False)
    assert kept.returncode == 1
    assert "nothing removed" in kept.stdout
    assert _stored(store, "bob")["value"] == before

    _refused(
        users("add", "dave", "--stack", f"{stack_name}-2", ok=False), 1, f"there is no stack '{stack_name}-2'"
    )
    _refused(users("list", ok=False), 2, "STACK_NAME is required")


def test_no_secret_reaches_a_log(inspect, store, stack_name, caplog, capsys) -> None:
    # botocore logs every request it makes, parameters and body, at DEBUG.
    caplog.set_level(logging.DEBUG)
    with capture_logs() as captured:
        assert users_main(["add", "erin", "--stack", stack_name]) == 0
        password = capsys.readouterr().out.strip()
        assert users_main(["token", "add", "erin", "--stack", stack_name]) == 0
        token = capsys.readouterr().out.strip()
        assert users_main(["password", "erin", "--stack", stack_name]) == 0
        renewed = capsys.readouterr().out.strip()
    assert "PutParameter" in caplog.text, "the log holds the requests: the check below sees them"
    logged = caplog.text + repr(captured)
    for secret in (password, token, accounts.TOKEN.match(token).group(2), renewed):
        assert secret not in logged


def test_a_damaged_account_parameter_is_left_out_named_and_removable(users, store, stack_name) -> None:
    on = ("--stack", stack_name)
    users("add", "frank", *on)
    broken = f"{store.names.accounts_path}/broken"
    tags = [{"Key": STACK_TAG, "Value": stack_name}]
    store.ssm.put_parameter(Name=broken, Value="not an account", Type="SecureString", Tags=tags)

    # One bad parameter must not fail every sign-in: the frontend and the tools read the rest.
    assert sorted(store.load()) == ["frank"]
    assert store.unreadable == [broken]
    listed = users("list", *on)
    assert listed.stdout.splitlines()[1].startswith("frank ")
    assert f"warning: {broken} holds no valid account" in listed.stderr
    _refused(users("password", "broken", *on, ok=False), 1, f"the parameter {broken} holds no valid account")

    users("remove", "broken", "--yes", *on)
    assert store.load().keys() == {"frank"}
    assert store.unreadable == []
