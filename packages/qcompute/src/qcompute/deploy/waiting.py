"""Waiting that shows progress: every wait says what it waits for and how long it has waited, and
gives up after a deadline with a message that says what was last seen."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from qcompute.deploy.session import DeployError

# One line per poll would flood a terminal during a ten-minute wait; one every few polls does not.
PROGRESS_EVERY_SECONDS = 15
# A first boot installs Docker and builds three images (5-10 minutes, more on a small instance).
BOOT_SECONDS = 1200
# Once the proxy runs, an ACME certificate takes seconds to a minute or two; DNS may take longer.
CERTIFICATE_SECONDS = 600


def say(line: str) -> None:
    """Print at once: progress must show while the command runs, also when piped to a file."""
    print(line, flush=True)


def wait_for(
    what: str,
    poll: Callable[[], tuple[bool, str]],
    *,
    timeout: float,
    interval: float = 5.0,
    hint: str = "",
) -> None:
    """Call `poll` (which returns done and a short state) until done; fail after `timeout` seconds."""
    started = time.monotonic()
    shown = -PROGRESS_EVERY_SECONDS
    while True:
        done, state = poll()
        elapsed = time.monotonic() - started
        if done:
            say(f"  {what}: {state} after {elapsed:.0f} s")
            return
        if elapsed >= timeout:
            advice = f"; {hint}" if hint else ""
            raise DeployError(f"gave up waiting for {what} after {timeout:.0f} s (last: {state}){advice}")
        if elapsed - shown >= PROGRESS_EVERY_SECONDS:
            say(f"  waiting for {what}: {state} ({elapsed:.0f} s)")
            shown = elapsed
        time.sleep(interval)


def wait_for_http(url: str, *, timeout: float = BOOT_SECONDS) -> None:
    """Poll a page of the deployed instance until it answers 200. Never called against an emulator."""

    def ready() -> tuple[bool, str]:
        try:
            # The URL is http://<the instance's public address>/readyz, built by `deploy up`.
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
                return response.status == 200, f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            return False, f"HTTP {error.code}"
        except (urllib.error.URLError, OSError):
            return False, "no answer yet"

    wait_for(
        f"{url} to answer",
        ready,
        timeout=timeout,
        interval=10,
        hint=(
            "the first boot installs Docker and builds three images; look at "
            "/var/log/cloud-init-output.log on the instance through Session Manager (see README)"
        ),
    )


class _InstanceHTTPS(http.client.HTTPSConnection):
    """HTTPS to one address, as if to `domain`: SNI, the certificate check and Host all name the
    domain, so the answer is this instance's whatever this machine's DNS says (or caches)."""

    def __init__(self, address: str, domain: str, port: int, context: ssl.SSLContext, timeout: float):
        super().__init__(domain, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        connection = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(connection, server_hostname=self.host)


def _resolves_to(domain: str) -> set[str]:
    try:
        return {info[4][0] for info in socket.getaddrinfo(domain, None, proto=socket.IPPROTO_TCP)}
    except OSError:
        return set()


def https_state(
    domain: str,
    address: str,
    *,
    port: int = 443,
    context: ssl.SSLContext | None = None,
    path: str = "/healthz",
) -> tuple[bool, str]:
    """Whether the instance answers https://<domain><path> with 200 and a certificate this machine
    trusts, and what was seen (DNS included, as that is the usual thing to fix)."""
    resolved = _resolves_to(domain)
    if not resolved:
        dns = f"{domain} does not resolve yet"
    elif address not in resolved:
        dns = f"{domain} resolves to {', '.join(sorted(resolved))}, not {address}"
    else:
        dns = f"{domain} resolves to {address}"
    connection = _InstanceHTTPS(address, domain, port, context or ssl.create_default_context(), timeout=10)
    try:
        connection.request("GET", path)
        status = connection.getresponse().status
    except ssl.SSLCertVerificationError as error:
        return False, f"{dns}; the certificate is not trusted yet ({error.verify_message})"
    except ssl.SSLError as error:
        return False, f"{dns}; no certificate yet ({error.reason or error})"
    except ConnectionRefusedError:
        return False, f"{dns}; port {port} refuses connections (the proxy is not running yet)"
    except (TimeoutError, OSError, http.client.HTTPException) as error:
        return False, f"{dns}; no answer on port {port} yet ({type(error).__name__})"
    finally:
        connection.close()
    if status != 200:
        return False, f"{dns}; HTTP {status} with a trusted certificate"
    return True, f"{dns}; HTTP 200 with a trusted certificate"


def wait_for_certificate(
    domain: str,
    address: str,
    *,
    timeout: float = CERTIFICATE_SECONDS,
    port: int = 443,
    context: ssl.SSLContext | None = None,
) -> None:
    """Poll the instance over HTTPS as `domain` until a trusted certificate answers. Never called
    against an emulator."""
    wait_for(
        f"https://{domain}/ to answer with a trusted certificate",
        lambda: https_state(domain, address, port=port, context=context),
        timeout=timeout,
        interval=10,
        hint=(
            f"the stack is deployed; check that {domain} has an A record for {address} (`dig +short "
            f"{domain}`), that --http-cidr lets the certificate authority reach ports 80 and 443 "
            "(it validates from the internet), and the proxy's log on the instance (`dc logs proxy`, "
            "see README); then run `scripts/deploy up` again to wait once more"
        ),
    )
