"""The attack catalog of a stack with accounts (ACCESS_MODE=accounts), each case with its exact answer.

A real gunicorn frontend, worker and logger on loopback; accounts in the emulator's SSM, made with the
same AccountStore that `scripts/users` uses.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests

from harness.client import TIMEOUT
from harness.services import ROOT
from harness.waiting import eventually
from qcompute import contract
from qcompute.accounts import AccountStore

pytestmark = pytest.mark.integration

PASSWORDS = {"alice": "alice-password-123", "bob": "bob-password-4567", "root": "root-password-8901"}


@dataclass
class Site:
    url: str
    store: AccountStore
    tokens: dict[str, str]

    def api(self, method: str, path: str, token: str | None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(method, self.url + path, headers=headers, timeout=TIMEOUT, **kwargs)

    def submit(self, who: str, numbers: list[int], **params) -> requests.Response:
        return self.api("POST", "/api/requests", self.tokens[who], json={"numbers": numbers}, params=params)

    def signed_in(self, who: str) -> requests.Session:
        browser = requests.Session()
        response = signin(browser, self.url, who, PASSWORDS[who])
        assert response.status_code == 303, response.text
        return browser


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def signin(browser: requests.Session, url: str, name: str, password: str, **extra) -> requests.Response:
    token = csrf_of(browser.get(f"{url}/signin", timeout=TIMEOUT).text)
    data = {"name": name, "password": password, "csrf_token": token, **extra}
    return browser.post(f"{url}/signin", data=data, timeout=TIMEOUT, allow_redirects=False)


def accounts_site(stack, run, **frontend_env) -> Site:
    store = AccountStore(stack.clients.ssm, stack.clients.names)
    store.create("alice", password=PASSWORDS["alice"])
    store.create("bob", password=PASSWORDS["bob"])
    store.create("root", password=PASSWORDS["root"], admin=True)
    tokens = {name: store.add_token(name)[1] for name in PASSWORDS}
    front = run.frontend(ACCESS_MODE="accounts", ACCOUNTS_REFRESH_SECONDS="0.5", **frontend_env)
    return Site(front.url, store, tokens)


def test_api_tokens_missing_wrong_expired_or_revoked_are_401(stack, run) -> None:
    run.worker()
    site = accounts_site(stack, run)
    _, expired = site.store.add_token("alice", days=0)
    for token in (None, "qc_00000000_" + "A" * 43, site.tokens["alice"][:-1] + "x", "not-a-token", expired):
        response = site.api("POST", "/api/requests", token, json={"numbers": [1, 2]})
        assert response.status_code == 401, (token, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    # A cookie is no way into the API, even a valid session's.
    browser = site.signed_in("alice")
    assert browser.get(f"{site.url}/api/history", timeout=TIMEOUT).status_code == 401

    assert site.submit("alice", [1, 2, 3], wait=10).status_code == 200
    token_id = site.tokens["alice"].split("_")[1]
    assert site.store.revoke_token(token_id) == "alice"
    eventually(lambda: site.submit("alice", [1]).status_code == 401, timeout=10, what="revoked token refused")


def test_each_user_sees_only_their_own_requests(stack, run) -> None:
    run.worker()
    run.logger()
    site = accounts_site(stack, run)
    mine = site.submit("alice", [4, 5, 6], wait=0).json()["id"]
    # Another user gets exactly what a made-up id gets, pending or done: 404.
    for attempt in ("at once", "when done"):
        if attempt == "when done":
            eventually(
                lambda: site.api("GET", f"/api/requests/{mine}", site.tokens["alice"]).status_code == 200,
                what="alice's result",
            )
            eventually(lambda: _history_ids(site, "alice") == [mine], what="alice's history entry")
        answer = site.api("GET", f"/api/requests/{mine}", site.tokens["bob"])
        assert answer.status_code == 404, (attempt, answer.text)
        assert answer.json()["error"]["code"] == "not_found"
        page = site.signed_in("bob").get(f"{site.url}/requests/{mine}", timeout=TIMEOUT)
        assert page.status_code == 404, attempt
    assert _history_ids(site, "bob") == []
    assert mine not in site.signed_in("bob").get(f"{site.url}/history", timeout=TIMEOUT).text
    alice_page = site.signed_in("alice").get(f"{site.url}/history", timeout=TIMEOUT).text
    assert mine in alice_page
    # The record remembers who submitted it; the admin sees everyone's, with the name.
    record = stack.clients.s3.get_object(Bucket=stack.clients.names.log_bucket, Key=contract.log_key(mine))
    assert b'"user":"alice"' in record["Body"].read()
    assert _history_ids(site, "root") == [mine]
    assert site.api("GET", f"/api/requests/{mine}", site.tokens["root"]).status_code == 200
    admin_history = site.signed_in("root").get(f"{site.url}/history", timeout=TIMEOUT).text
    assert mine in admin_history
    assert re.search(r"<td[^>]*>alice</td>", admin_history)


def _history_ids(site: Site, who: str) -> list[str]:
    response = site.api("GET", "/api/history", site.tokens[who])
    assert response.status_code == 200, response.text
    return [entry["id"] for entry in response.json()["entries"]]


def test_admin_pages_are_403_for_others(stack, run) -> None:
    site = accounts_site(stack, run)
    assert site.api("GET", "/api/status", site.tokens["alice"]).status_code == 403
    assert site.signed_in("alice").get(f"{site.url}/status", timeout=TIMEOUT).status_code == 403
    assert site.api("GET", "/api/status", site.tokens["root"]).status_code == 200
    assert site.signed_in("root").get(f"{site.url}/status", timeout=TIMEOUT).status_code == 200
    # Nobody signed in: the pages send to the sign-in page, and come back after it.
    stranger = requests.Session()
    for path in ("/", "/history", "/status", f"/requests/{contract.new_request_id(b'x')}"):
        response = stranger.get(site.url + path, timeout=TIMEOUT, allow_redirects=False)
        assert response.status_code == 303, path
        assert "/signin?next=" in response.headers["Location"], path
    back = signin(stranger, site.url, "root", PASSWORDS["root"], next="/status")
    assert back.headers["Location"] == "/status"
    elsewhere = signin(requests.Session(), site.url, "root", PASSWORDS["root"], next="//evil.example/x")
    assert elsewhere.headers["Location"] == "/"


def test_signin_needs_csrf_and_never_says_which_part_was_wrong(stack, run) -> None:
    site = accounts_site(stack, run)
    browser = requests.Session()
    browser.get(f"{site.url}/signin", timeout=TIMEOUT)
    no_csrf = browser.post(
        f"{site.url}/signin", data={"name": "alice", "password": PASSWORDS["alice"]}, timeout=TIMEOUT
    )
    assert no_csrf.status_code == 400
    wrong_password = signin(requests.Session(), site.url, "alice", "not-her-password")
    no_such_name = signin(requests.Session(), site.url, "mallory", "not-her-password")
    assert wrong_password.status_code == no_such_name.status_code == 401
    assert "wrong name or password" in wrong_password.text
    assert "wrong name or password" in no_such_name.text


def test_guessing_passwords_is_slowed_then_refused(stack, run) -> None:
    site = accounts_site(stack, run, SIGNIN_FAILURES_BEFORE_DELAY=2, SIGNIN_FAILURES_ALLOWED=4)
    times, statuses = [], []
    for _ in range(5):
        started = time.monotonic()
        statuses.append(signin(requests.Session(), site.url, "alice", "guess-guess-guess").status_code)
        times.append(time.monotonic() - started)
    assert statuses == [401, 401, 401, 401, 429], statuses
    # Each failure past the second waits longer.
    assert times[2] >= 1.0, times
    assert times[3] >= 2.0, times
    # From this address, even the right password waits now: the guesser cannot tell it was right.
    refused = signin(requests.Session(), site.url, "alice", PASSWORDS["alice"])
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 900


def test_sign_out_and_expiry_end_the_session_and_a_copied_cookie_with_it(stack, run) -> None:
    site = accounts_site(stack, run, SESSION_HOURS=str(6 / 3600))
    browser = site.signed_in("alice")
    assert browser.get(f"{site.url}/history", timeout=TIMEOUT).status_code == 200
    copied = dict(browser.cookies)
    page = browser.get(f"{site.url}/", timeout=TIMEOUT).text
    out = browser.post(
        f"{site.url}/signout", data={"csrf_token": csrf_of(page)}, timeout=TIMEOUT, allow_redirects=False
    )
    assert out.status_code == 303
    for cookies in (None, copied):
        again = browser.get(f"{site.url}/history", cookies=cookies, timeout=TIMEOUT, allow_redirects=False)
        assert again.status_code == 303
        assert "/signin" in again.headers["Location"]
    # Sessions end by themselves (SESSION_HOURS, here 6 s) and when the password changes.
    expiring = site.signed_in("bob")
    time.sleep(7)
    assert expiring.get(f"{site.url}/history", timeout=TIMEOUT, allow_redirects=False).status_code == 303
    reset = site.signed_in("bob")
    site.store.set_password("bob", "a-brand-new-password")
    eventually(
        lambda: reset.get(f"{site.url}/history", timeout=TIMEOUT, allow_redirects=False).status_code == 303,
        timeout=10,
        what="the session of the old password refused",
    )


def test_a_submission_flood_gets_429_and_loses_nothing_accepted(stack, run) -> None:
    run.worker()
    run.logger()
    site = accounts_site(stack, run, SUBMISSIONS_PER_MINUTE=5, INTEGERS_PER_MINUTE=1000)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: site.submit("alice", [n, n + 1], wait=0), range(8)))
    accepted = [answer.json()["id"] for answer in answers if answer.status_code == 202]
    refused = [answer for answer in answers if answer.status_code == 429]
    assert len(accepted) == 5, [answer.status_code for answer in answers]
    assert len(refused) == 3, [answer.status_code for answer in answers]
    for answer in refused:
        assert answer.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(answer.headers["Retry-After"]) <= 60
    # Another account has its own quota; integers count too.
    assert site.submit("bob", list(range(600)), wait=0).status_code == 202
    too_many = site.submit("bob", list(range(600)), wait=0)
    assert too_many.status_code == 429
    assert "1,000 integers a minute" in too_many.json()["error"]["message"]
    for request_id in accepted:
        eventually(
            lambda request_id=request_id: (
                site.api("GET", f"/api/requests/{request_id}", site.tokens["alice"]).status_code == 200
            ),
            what=f"result of {request_id}",
        )
    eventually(lambda: len(_history_ids(site, "alice")) == 5, what="five logged")


def test_a_backlog_above_the_bound_answers_503(stack, run) -> None:
    site = accounts_site(stack, run, MAX_BACKLOG=3)  # no worker: the queue only grows
    for n in range(4):
        assert site.submit("alice", [n], wait=0).status_code == 202

    def refused() -> list[requests.Response]:
        answer = site.submit("alice", [9], wait=0)  # a Response is falsy when its status is an error
        return [answer] if answer.status_code == 503 else []

    [answer] = eventually(refused, timeout=20, what="a 503 once the backlog is above 3")
    assert answer.json()["error"]["code"] == "overloaded"
    assert answer.headers["Retry-After"] == "30"


def test_forwarded_for_counts_only_from_the_trusted_proxy(stack, run) -> None:
    """Open mode limits each client address; a forged X-Forwarded-For must not buy a new quota."""
    untrusted = run.frontend(SUBMISSIONS_PER_MINUTE=2, TRUSTED_PROXIES="proxy")  # no such host here
    trusted = run.frontend("behind-proxy", SUBMISSIONS_PER_MINUTE=2, TRUSTED_PROXIES="127.0.0.1")

    def statuses(url: str) -> list[int]:
        return [
            requests.post(
                f"{url}/api/requests",
                json={"numbers": [1]},
                params={"wait": 0},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
                timeout=TIMEOUT,
            ).status_code
            for n in range(4)
        ]

    assert statuses(untrusted.url) == [202, 202, 429, 429]
    assert statuses(trusted.url) == [202, 202, 202, 202]  # four clients as the proxy says
    clients = {event.get("client") for event in untrusted.events("submitted")}
    assert clients == {"127.0.0.1"}


def test_scripts_submit_sends_the_token_from_the_environment(stack, run, tmp_path) -> None:
    run.worker()
    site = accounts_site(stack, run)
    submit = [sys.executable, str(ROOT / "scripts/submit"), "--url", site.url, "--op", "sum", "1", "2", "3"]
    env = {"PATH": os.environ["PATH"]}
    refused = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 1
    assert "wants an API token" in refused.stderr
    done = subprocess.run(
        submit, env={**env, "QCOMPUTE_TOKEN": site.tokens["bob"]}, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"^sum\s+6$", done.stdout, re.MULTILINE)
    token_file = tmp_path / "token"
    token_file.write_text(site.tokens["alice"] + "\n")
    from_file = subprocess.run(
        [*submit, "--token-file", str(token_file)], env=env, capture_output=True, text=True, timeout=120
    )
    assert from_file.returncode == 0, from_file.stderr
