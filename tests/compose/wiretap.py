"""Print the header block of the first HTTP request to PORT whose bytes contain MARKER.

Runs in a container that shares the frontend's network namespace (tests/compose/test_https.py):
what it prints is what the frontend received, byte for byte, on its side of the proxy. Needs
CAP_NET_RAW; standard library only.

    python3 wiretap.py PORT MARKER SECONDS
"""

import socket
import sys
import time
from collections import defaultdict

ETH_P_ALL = 0x0003
IPV4 = 0x0800
TCP = 6


def main() -> int:
    port, marker, seconds = int(sys.argv[1]), sys.argv[2].encode(), float(sys.argv[3])
    tap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(ETH_P_ALL))
    tap.settimeout(0.5)
    print("listening", flush=True)
    streams: dict[tuple[bytes, bytes], bytearray] = defaultdict(bytearray)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            frame = tap.recv(65535)
        except TimeoutError:
            continue
        if int.from_bytes(frame[12:14], "big") != IPV4:
            continue
        ip = frame[14:]
        header_length, total_length = (ip[0] & 0x0F) * 4, int.from_bytes(ip[2:4], "big")
        if ip[9] != TCP:
            continue
        tcp = ip[header_length:total_length]
        if int.from_bytes(tcp[2:4], "big") != port:
            continue
        # Segments to PORT, per connection (source address and port), in arrival order.
        stream = streams[ip[12:16], tcp[0:2]]
        stream += tcp[(tcp[12] >> 4) * 4 :]
        at = stream.find(marker)
        end = stream.find(b"\r\n\r\n", at)
        if at >= 0 and end >= 0:
            start = stream.rfind(b"\r\n\r\n", 0, at)
            print(stream[start + 4 if start >= 0 else 0 : end].decode("latin-1"), flush=True)
            return 0
    print(f"no request with {marker.decode()} to port {port} in {seconds} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
