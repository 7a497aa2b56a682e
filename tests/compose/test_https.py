"""HTTPS as `scripts/deploy up --domain NAME` runs it: Caddy with https.Caddyfile in front of the frontend.

A second stack: compose.yaml + compose.local.yaml + tests/compose/https.yaml, which adds Pebble (Let's
Encrypt's ACME test server) on the compose network. Caddy gets its certificate from Pebble through
real HTTP-01 validation: Pebble looks the domain up in Docker's DNS, finds the proxy, and fetches the
token from its port 80. The tests drive the proxy only through ports published on 127.0.0.1.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import re
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness.backend import free_port
from harness.browser import launch_chromium
from harness.services import ROOT
from harness.waiting import eventually
from qcompute.accounts import AccountStore
from qcompute.names import StackNames

pytestmark = pytest.mark.compose

DOMAIN = "qcompute.test"
FORGED = "203.0.113.9"  # TEST-NET-3: an address no container has
ONE_YEAR = 31536000


def _certificate(
    subject: str, key, issuer: x509.Certificate | None, issuer_key, names=()
) -> x509.Certificate:
    """A one-day certificate: a CA's own if `issuer` is None, else one for `names` that it signs."""
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    if issuer is None:
        usage = {"key_cert_sign": True, "crl_sign": True, "digital_signature": False}
    else:
        usage = {"key_cert_sign": False, "crl_sign": False, "digital_signature": True}
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    key_usage = x509.KeyUsage(
        content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
        encipher_only=False, decipher_only=False, **usage,
    )  # fmt: skip
    return builder.add_extension(key_usage, critical=True).sign(issuer_key, hashes.SHA256())


def _write_pebble_tls(folder: Path) -> None:
    """A throwaway CA and the certificate Pebble serves its API with (as `pebble` to Caddy, as
    127.0.0.1 to these tests). What Pebble issues to the proxy comes from Pebble's own fresh root."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("qcompute test CA for Pebble", ca_key, None, ca_key)
    names = [x509.DNSName("pebble"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = _certificate("pebble", key, ca, ca_key, names)
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "cert.pem").write_bytes(cert.public_bytes(pem))
    (folder / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    # Read by Pebble's unprivileged user and by Caddy in their containers.
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)


class Proxy:
    """The stack with its proxy's published ports and Pebble's root."""

    def __init__(self, stack, http_port: int, https_port: int, root: Path) -> None:
        self.stack, self.http_port, self.https_port, self.root = stack, http_port, https_port, root

    def curl(self, path: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Real curl to https://DOMAIN:PORT/path, trusting only Pebble's root, on 127.0.0.1; the
        answer's status line and headers come first in stdout."""
        return subprocess.run(
            [
                "curl", "--silent", "--show-error", "--max-time", str(timeout - 10), "--include",
                "--cacert", str(self.root),
                "--resolve", f"{DOMAIN}:{self.https_port}:127.0.0.1",
                *args,
                f"https://{DOMAIN}:{self.https_port}{path}",
            ],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def served_certificate(self) -> dict:
        """The proxy's certificate for DOMAIN, verified against Pebble's root only."""
        context = ssl.create_default_context(cafile=str(self.root))
        with (
            socket.create_connection(("127.0.0.1", self.https_port), timeout=10) as connection,
            context.wrap_socket(connection, server_hostname=DOMAIN) as tls,
        ):
            return tls.getpeercert()


@pytest.fixture(scope="module")
def proxy(start_stack, tmp_path_factory) -> Iterator[Proxy]:
    tls = tmp_path_factory.mktemp("pebble-tls")
    _write_pebble_tls(tls)
    http_port, https_port, pebble_port = free_port(), free_port(), free_port()
    settings = {
        "DOMAIN": DOMAIN,
        # As scripts/deploy runs it: sign-in and API tokens.
        "ACCESS_MODE": "accounts",
        "ACCOUNTS_REFRESH_SECONDS": "1",
        "PROXY_HTTP_PORT": str(http_port),
        "PROXY_HTTPS_PORT": str(https_port),
        "PEBBLE_MANAGEMENT_PORT": str(pebble_port),
        "PEBBLE_TLS_DIR": str(tls),
    }
    with start_stack(
        "qcompute-https-test", "compose-https.log", ["tests/compose/https.yaml"], **settings
    ) as stack:
        # The root that signs what Pebble issues is made anew each time Pebble starts.
        root = requests.get(
            f"https://127.0.0.1:{pebble_port}/roots/0", verify=str(tls / "ca.pem"), timeout=10
        )
        root.raise_for_status()
        (tls / "pebble-root.pem").write_text(root.text)
        yield Proxy(stack, http_port, https_port, tls / "pebble-root.pem")


def _handshake(proxy: Proxy) -> dict | None:
    try:
        return proxy.served_certificate()
    except (ssl.SSLError, OSError):
        return None


@pytest.fixture(scope="module")
def issued(proxy) -> dict:
    """The certificate, once Caddy has obtained it (a few seconds after it starts)."""
    try:
        return eventually(lambda: _handshake(proxy), timeout=90, interval=1, what="a certificate from Pebble")
    except AssertionError as timeout:
        log = proxy.stack.compose("logs", "--no-color", "proxy").stdout.splitlines()
        errors = "\n".join(line for line in log if '"level":"error"' in line)
        raise AssertionError(f"{timeout}; the proxy's errors:\n{errors}") from None


def test_certificate_comes_from_pebble_through_http01_on_port_80(proxy, issued) -> None:
    assert ("DNS", DOMAIN) in issued["subjectAltName"]
    issuer = dict(field[0] for field in issued["issuer"])
    assert issuer["commonName"].startswith("Pebble Intermediate CA"), issuer
    answer = proxy.curl("/healthz")
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.startswith("HTTP/2 200"), answer.stdout
    # Caddy served the HTTP-01 token to Pebble, which reached it on port 80 through DOMAIN's alias.
    pebble = proxy.stack.containers("pebble")[0]
    pebble_addresses = {n["IPAddress"] for n in pebble["NetworkSettings"]["Networks"].values()}
    proxy_log = proxy.stack.compose("logs", "--no-color", "proxy").stdout
    served = [
        json.loads(line.split("|", 1)[1])
        for line in proxy_log.splitlines()
        if "served key authentication" in line
    ]
    assert served, "Caddy served no HTTP-01 token"
    assert {(entry["challenge"], entry["remote"].rsplit(":", 1)[0]) for entry in served} == {
        ("http-01", address) for address in pebble_addresses
    }


def test_plain_http_redirects_to_https(proxy, issued) -> None:
    answer = requests.get(
        f"http://127.0.0.1:{proxy.http_port}/requests?page=2",
        headers={"Host": DOMAIN},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code in (301, 308), answer.status_code
    # Caddy redirects to the default port 443, not to the test's published one.
    location = urlsplit(answer.headers["Location"])
    assert (location.scheme, location.hostname, location.path, location.query) == (
        "https",
        DOMAIN,
        "/requests",
        "page=2",
    )


def test_https_answers_carry_hsts(proxy, issued) -> None:
    answer = proxy.curl("/healthz")
    assert answer.returncode == 0, answer.stderr
    hsts = re.search(r"^strict-transport-security: *(.*?)\r?$", answer.stdout, re.I | re.M)
    assert hsts, answer.stdout
    max_age = re.search(r"max-age=(\d+)", hsts.group(1))
    assert max_age
    assert int(max_age.group(1)) >= ONE_YEAR


def _frontend_access_record(proxy: Proxy, probe: str) -> dict | None:
    for line in proxy.stack.compose("logs", "--no-color", "frontend").stdout.splitlines():
        if probe in line and "http_request" in line:
            return json.loads(line.split("|", 1)[1])
    return None


def test_a_forged_x_forwarded_for_never_reaches_the_frontend(proxy, issued) -> None:
    frontend = proxy.stack.containers("frontend")[0]
    probe = f"probe={uuid.uuid4().hex}"
    # A tap in the frontend's network namespace: exactly what the frontend received from the proxy.
    tap = subprocess.run(
        [
            "docker", "run", "--detach", "--network", f"container:{frontend['Id']}",
            "--user", "0:0", "--cap-drop", "ALL", "--cap-add", "NET_RAW",
            "--volume", f"{ROOT / 'tests/compose/wiretap.py'}:/wiretap.py:ro",
            frontend["Config"]["Image"], "python3", "/wiretap.py", "8080", probe, "60",
        ],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    try:

        def tap_output() -> str:
            return subprocess.run(
                ["docker", "logs", tap], capture_output=True, text=True, check=True, timeout=30
            ).stdout

        eventually(lambda: "listening" in tap_output(), timeout=30, what="the tap to listen")
        answer = proxy.curl(f"/healthz?{probe}", "--header", f"X-Forwarded-For: {FORGED}")
        assert answer.returncode == 0, answer.stderr
        status = subprocess.run(["docker", "wait", tap], capture_output=True, text=True, timeout=90)
        assert status.stdout.strip() == "0", status.stderr + tap_output()
        received = tap_output().split("listening\n", 1)[1]
    finally:
        subprocess.run(["docker", "rm", "--force", tap], capture_output=True, check=False, timeout=60)
    headers = dict(
        line.split(": ", 1) for line in received.splitlines() if ": " in line and line[0].isupper()
    )
    assert FORGED not in received, received
    # Replaced, not appended: the one address is the client's as the proxy saw it.
    client = headers["X-Forwarded-For"]
    ipaddress.ip_address(client)
    assert headers["X-Forwarded-Proto"] == "https"
    assert urlsplit(f"//{headers['X-Forwarded-Host']}").hostname == DOMAIN
    print(f"the frontend received, through the proxy:\n{received}")

    record = eventually(lambda: _frontend_access_record(proxy, probe), timeout=30, what="the access log line")
    assert FORGED not in json.dumps(record)
    print(f"the frontend's access log: {record}")
    container = proxy.stack.containers("proxy")[0]
    proxy_addresses = {n["IPAddress"] for n in container["NetworkSettings"]["Networks"].values()}
    # The client the frontend acts on (limits, logs) is the one the proxy vouched for; gunicorn's
    # `remote` shows the same once ProxyFix has rewritten the request (else the proxy's address).
    assert record["client"] == client, record
    assert record["remote"] in {client, *proxy_addresses}, record


def test_the_proxy_stops_cleanly_and_keeps_its_certificate(proxy, issued) -> None:
    started = time.monotonic()
    proxy.stack.compose("stop", "proxy", timeout=120)
    took = time.monotonic() - started
    state = proxy.stack.containers("proxy")[0]["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0), state
    assert took < 30, f"stopping the proxy took {took:.1f} s"
    proxy.stack.compose("up", "--no-build", "--detach", "--wait", "--wait-timeout", "60", timeout=120)
    again = eventually(lambda: _handshake(proxy), timeout=60, interval=1, what="the proxy back")
    assert again["serialNumber"] == issued["serialNumber"], "the same certificate, from the volume"


def test_proxy_is_hardened_healthy_and_within_its_memory(proxy, issued) -> None:
    container = proxy.stack.containers("proxy")[0]
    host = container["HostConfig"]
    assert container["State"]["Health"]["Status"] == "healthy"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert [cap.removeprefix("CAP_") for cap in host["CapAdd"]] == ["NET_BIND_SERVICE"]
    # What Caddy really holds: CAP_NET_BIND_SERVICE (bit 10) and nothing else.
    status = proxy.stack.compose("exec", "-T", "proxy", "cat", "/proc/1/status").stdout
    assert re.search(r"^CapEff:\s*0*400$", status, re.M), status
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "5", "max-size": "10m"}}
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert host["Memory"] == host["MemorySwap"] == 96 * 2**20
    # A burst: 2,000 requests, 200 at a time, each on a new TLS connection.
    burst = proxy.curl(
        "/healthz?n=[1-2000]", "--http1.1", "--no-keepalive", "--parallel", "--parallel-max", "200",
        "--output", "/dev/null", "--write-out", "%{http_code}\\n", timeout=120,
    )  # fmt: skip
    assert burst.returncode == 0, burst.stderr
    assert burst.stdout.split() == ["200"] * 2000
    peak = proxy.stack.compose(
        "exec", "-T", "proxy", "sh", "-c",
        "cat /sys/fs/cgroup/memory.peak 2>/dev/null || cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes",
    ).stdout  # fmt: skip
    print(f"proxy memory peak after a burst of 2,000 TLS connections: {int(peak) / 2**20:.1f} MiB")
    container = proxy.stack.containers("proxy")[0]
    assert container["State"]["OOMKilled"] is False
    assert container["RestartCount"] == 0


def _spki_sha256(proxy: Proxy) -> str:
    """The served certificate's public key hash, the one certificate Chromium is told to accept:
    Chromium has its own trust store (curl and Python above check the chain against Pebble's root)."""
    context = ssl.create_default_context(cafile=str(proxy.root))
    with (
        socket.create_connection(("127.0.0.1", proxy.https_port), timeout=10) as connection,
        context.wrap_socket(connection, server_hostname=DOMAIN) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    public_key = x509.load_der_x509_certificate(der).public_key()
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return base64.b64encode(digest.finalize()).decode()


def test_a_browser_signs_in_over_https_sees_only_its_own_history_and_signs_out(
    proxy, issued, screenshots
) -> None:
    from playwright.sync_api import sync_playwright

    ssm, sts = proxy.stack.aws("ssm"), proxy.stack.aws("sts")
    names = StackNames(
        proxy.stack.env_value("STACK_NAME"),
        sts.get_caller_identity()["Account"],
        proxy.stack.env_value("AWS_REGION"),
    )
    store = AccountStore(ssm, names)
    store.create("alice", password="alice-password-123")
    store.create("bob", password="bob-password-4567")
    bob_token = store.add_token("bob")[1]
    # Bob's request, through the API with his token, over HTTPS as a program would send it.
    bobs = proxy.curl(
        "/api/requests?wait=20",
        "--header", f"Authorization: Bearer {bob_token}",
        "--header", "Content-Type: application/json",
        "--data", '{"numbers": [7, 8]}',
        timeout=60,
    )  # fmt: skip
    assert bobs.stdout.startswith("HTTP/2 200"), bobs.stdout
    bobs_id = json.loads(bobs.stdout.split("\n\n", 1)[1])["id"]
    site = f"https://{DOMAIN}"
    with sync_playwright() as playwright:
        browser = launch_chromium(
            playwright,
            f"--host-resolver-rules=MAP {DOMAIN}:443 127.0.0.1:{proxy.https_port}",
            f"--ignore-certificate-errors-spki-list={_spki_sha256(proxy)}",
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(f"{site}/history")
            assert page.url.startswith(f"{site}/signin?next=/history"), page.url
            page.fill("#name", "alice")
            page.fill("#password", "not-her-password")
            page.click("#sign-in")
            assert page.inner_text("#signin-error") == "wrong name or password"
            page.fill("#password", "alice-password-123")
            page.click("#sign-in")
            page.wait_for_url(f"{site}/history")
            assert "Signed in as alice" in page.inner_text("#signed-in-as")
            cookie = next(c for c in page.context.cookies() if c["name"] == "qcompute_session")
            assert cookie["secure"]
            assert cookie["httpOnly"]

            page.goto(f"{site}/")
            page.fill("#numbers", "3 1 4 1 5")
            page.click("[data-check=none]")
            page.check("input[value=sum]")
            page.click("#submit")
            page.wait_for_selector("#result-sum")
            assert page.inner_text("#result-sum td") == "14"
            request_id = page.inner_text("#permalink code")
            page.screenshot(path=screenshots / "https-01-result.png", full_page=True)

            page.click("nav >> text=History")
            page.locator(f"tr[data-id='{request_id}']").wait_for()
            assert page.locator(f"tr[data-id='{bobs_id}']").count() == 0, "only her own"
            assert page.locator("nav >> text=Status").count() == 0, "no status page for non-admins"
            page.screenshot(path=screenshots / "https-02-history.png", full_page=True)
            assert page.goto(f"{site}/requests/{bobs_id}").status == 404

            page.goto(f"{site}/history")
            page.click("#sign-out")
            page.wait_for_url(f"{site}/signin")
            page.goto(f"{site}/history")
            assert page.url.startswith(f"{site}/signin"), "history is no longer reachable"
            assert page.locator(f"text={request_id}").count() == 0
        finally:
            browser.close()
