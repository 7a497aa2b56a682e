"""The strict layer's HTTP server: forwards every call to the emulator under AWS's rules.

    python -m harness.strict --upstream http://127.0.0.1:4566 --port 4567 [--log faults.jsonl]
                             [--settings '{"fault_rate": 0.01}']

The services only see another AWS_ENDPOINT_URL. Paths under /_strict/ are the layer's own control API
(an S3 bucket name cannot start with "_", so nothing of AWS's is shadowed):

    GET  /_strict/health                 200 when it answers
    GET  /_strict/stats                  calls and faults by API, active outages
    POST /_strict/stats/reset            zero the counters
    PUT  /_strict/settings               change settings (JSON object of rules.Settings fields)
    POST /_strict/outages                {"service": "s3", "seconds": 120, "kind": "unavailable"|"reset"}
    DELETE /_strict/outages              end every outage now

Every fault it injects is logged as one JSON line (to --log, and counted in the stats).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import socket
import struct
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.strict import wire
from harness.strict.rules import Fault, Rules, Settings

# Not relayed: they describe one connection, and the layer makes its own to the emulator.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "upgrade"}
# Longer than the longest long poll (20 s) and a large S3 transfer.
UPSTREAM_TIMEOUT_SECONDS = 120


class StrictServer(ThreadingHTTPServer):
    daemon_threads = True
    # Many services keep connections open and long-poll at once.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], upstream: str, rules: Rules, log_path: Path | None):
        super().__init__(address, Handler)
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.rules = rules
        self._log_lock = threading.Lock()
        self._log = log_path.open("a", buffering=1) if log_path else None

    def log_fault(self, call: wire.Call, fault: Fault) -> None:
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "api": call.api,
            "fault": fault.kind,
            "phase": fault.phase,
            "status": fault.response.status if fault.response else None,
            "reason": fault.reason,
        }
        if self._log is not None:
            with self._log_lock:
                self._log.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    server: StrictServer
    # Keep-alive, as botocore's connection pool expects of AWS.
    protocol_version = "HTTP/1.1"
    upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: only faults are logged."""

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

    # --- one request ---------------------------------------------------------------------------------------

    def _handle(self) -> None:
        body = self._read_body()
        if self.path.startswith("/_strict/"):
            self._control(body)
            return
        call = wire.identify(self.command, self.path, dict(self.headers.items()), body)
        rules = self.server.rules
        time.sleep(rules.latency())
        fault = rules.before(call)
        if fault is not None:
            self._apply(call, fault)
            return
        try:
            response = self._forward(call, rules.forwarded_body(call))
        except OSError:
            self._reset()  # the emulator is down: the client sees what a dead endpoint gives it
            return
        answer = rules.after(call, response)
        if isinstance(answer, Fault):
            self._apply(call, answer)
            return
        self._send(answer, head=call.is_head)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self, call: wire.Call, body: bytes) -> wire.Response:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        for attempt in (1, 2):
            if self.upstream is None:
                self.upstream = http.client.HTTPConnection(
                    self.server.upstream_host, self.server.upstream_port, timeout=UPSTREAM_TIMEOUT_SECONDS
                )
            try:
                self.upstream.request(self.command, self.path, body=body, headers=headers)
                upstream = self.upstream.getresponse()
                data = upstream.read()
                return wire.Response(upstream.status, dict(upstream.getheaders()), data)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A kept-alive connection the emulator closed: open a new one once.
                self.upstream.close()
                self.upstream = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _apply(self, call: wire.Call, fault: Fault) -> None:
        self.server.log_fault(call, fault)
        if fault.response is None:
            self._reset()
        else:
            self._send(fault.response, head=call.is_head)

    def _send(self, response: wire.Response, *, head: bool) -> None:
        self.send_response_only(response.status)
        for name, value in response.headers.items():
            if name.lower() in HOP_BY_HOP or (name.lower() == "content-length" and not head):
                continue
            self.send_header(name, value)
        if not head:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if not head and response.body:
            self.wfile.write(response.body)

    def _reset(self) -> None:
        """Drop the connection with a TCP reset, as a failing load balancer does."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    # --- the control API ---------------------------------------------------------------------------------

    def _control(self, body: bytes) -> None:
        rules, route = self.server.rules, (self.command, self.path.split("?")[0])
        try:
            document = json.loads(body) if body else {}
            if route == ("GET", "/_strict/health"):
                answer: Any = {"status": "ok"}
            elif route == ("GET", "/_strict/stats"):
                answer = rules.stats()
            elif route == ("POST", "/_strict/stats/reset"):
                rules.reset_stats()
                answer = {"status": "reset"}
            elif route == ("GET", "/_strict/settings"):
                answer = vars(rules.settings)
            elif route == ("PUT", "/_strict/settings"):
                rules.configure(document)
                answer = vars(rules.settings)
            elif route == ("POST", "/_strict/outages"):
                rules.start_outage(
                    document["service"], float(document["seconds"]), document.get("kind", "unavailable")
                )
                answer = rules.stats()
            elif route == ("DELETE", "/_strict/outages"):
                rules.end_outages()
                answer = rules.stats()
            else:
                self._send_json(404, {"error": f"no control route {route}"})
                return
        except (ValueError, KeyError, TypeError) as error:
            self._send_json(400, {"error": str(error)})
            return
        self._send_json(200, answer)

    def _send_json(self, status: int, document: Any) -> None:
        self._send(
            wire.Response(status, {"Content-Type": "application/json"}, json.dumps(document).encode()),
            head=False,
        )


def serve(
    upstream: str, port: int, settings: Settings, log_path: Path | None, host: str = "127.0.0.1"
) -> StrictServer:
    """Start the layer in a background thread and return its server (tests that embed it)."""
    server = StrictServer((host, port), upstream, Rules(settings), log_path)
    threading.Thread(target=server.serve_forever, name="strict-layer", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness.strict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="the emulator's endpoint")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--log", type=Path, help="where injected faults are logged (JSON lines)")
    parser.add_argument("--settings", default="{}", help="initial settings, as JSON")
    args = parser.parse_args(argv)
    settings = Settings()
    settings.update(json.loads(args.settings))
    server = StrictServer((args.host, args.port), args.upstream, Rules(settings), args.log)
    print(f"strict layer on http://{args.host}:{args.port} -> {args.upstream}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
