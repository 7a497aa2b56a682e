"""`deploy up --domain` waits for the instance to answer HTTPS with a certificate this machine trusts:
against a real TLS server on 127.0.0.1 with a certificate from a test CA, trusted or not."""

from __future__ import annotations

import datetime
import http.server
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from qcompute.deploy import waiting
from qcompute.deploy.session import DeployError

# Resolves nowhere (RFC 6761): the wait must reach the instance by its address, naming the domain.
DOMAIN = "qcompute.test"


def _certificate(subject: str, key, issuer_key=None, issuer: x509.Name | None = None, *, ca: bool = False):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


@dataclass
class TLSServer:
    port: int
    ca_pem: bytes
    status: list[int] = field(default_factory=lambda: [200])
    seen: list[tuple[str | None, str | None]] = field(default_factory=list)  # (SNI, Host)

    def trusting(self) -> ssl.SSLContext:
        """A client context that trusts the test CA, as a machine trusts a public CA."""
        context = ssl.create_default_context()
        context.load_verify_locations(cadata=self.ca_pem.decode())
        return context


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TLSServer]:
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("qcompute test CA", ca_key, ca=True)
    leaf = _certificate(DOMAIN, leaf_key, ca_key, ca.subject)
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.key").write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    names: list[str | None] = []
    context.sni_callback = lambda _socket, name, _context: names.append(name)
    state = TLSServer(0, ca.public_bytes(serialization.Encoding.PEM))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.seen.append((names[-1] if names else None, self.headers.get("Host")))
            self.send_response(state.status[0] if self.path == "/healthz" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_done_once_the_instance_answers_with_a_trusted_certificate_for_the_domain(tls_server) -> None:
    done, state = waiting.https_state(
        DOMAIN, "127.0.0.1", port=tls_server.port, context=tls_server.trusting()
    )
    assert done, state
    assert state == f"{DOMAIN} does not resolve yet; HTTP 200 with a trusted certificate"
    # Reached by address, but as the domain: the certificate is checked for it, Host names it.
    assert tls_server.seen == [(DOMAIN, f"{DOMAIN}:{tls_server.port}")]
    waiting.wait_for_certificate(
        DOMAIN, "127.0.0.1", timeout=5, port=tls_server.port, context=tls_server.trusting()
    )


def test_a_certificate_this_machine_does_not_trust_is_not_done(tls_server) -> None:
    # The default context trusts what this machine trusts: not the test CA (nor a proxy's own CA).
    done, state = waiting.https_state(DOMAIN, "127.0.0.1", port=tls_server.port)
    assert not done
    assert "the certificate is not trusted yet (unable to get local issuer certificate)" in state
    assert tls_server.seen == [], "no request goes out over an untrusted connection"


def test_a_trusted_certificate_on_a_page_that_fails_is_not_done(tls_server) -> None:
    tls_server.status[0] = 502
    done, state = waiting.https_state(
        DOMAIN, "127.0.0.1", port=tls_server.port, context=tls_server.trusting()
    )
    assert not done
    assert state.endswith("HTTP 502 with a trusted certificate")


def test_giving_up_says_what_to_check(tls_server) -> None:
    with pytest.raises(DeployError) as gave_up:
        waiting.wait_for_certificate(DOMAIN, "127.0.0.1", timeout=0, port=tls_server.port)
    message = str(gave_up.value)
    assert message.startswith(f"gave up waiting for https://{DOMAIN}/ to answer with a trusted certificate")
    assert "(last: qcompute.test does not resolve yet; the certificate is not trusted yet" in message
    for advice in (
        f"an A record for 127.0.0.1 (`dig +short {DOMAIN}`)",
        "ports 80 and 443",
        "scripts/deploy up",
    ):
        assert advice in message


def test_a_closed_port_and_a_wrong_dns_answer_are_named(tls_server) -> None:
    closed = tls_server.port
    done, state = waiting.https_state("localhost", "127.0.0.2", port=closed, context=tls_server.trusting())
    assert not done
    assert state.startswith("localhost resolves to ")
    assert ", not 127.0.0.2;" in state
    assert f"port {closed} refuses connections" in state
