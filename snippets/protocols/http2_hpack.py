"""HPACK: repeated request headers shrink to a few bytes on HTTP/2; HTTP/1.1 resends them all.

Run: python snippets/protocols/http2_hpack.py
"""

from __future__ import annotations

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import RequestReceived

# What a browser sends with every API call: the same headers, only the path changes.
COMMON = [
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"),
    ("accept", "application/json"),
    ("accept-language", "en-GB,en;q=0.9"),
    ("accept-encoding", "gzip, deflate, br"),
    ("cookie", "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark; consent=1"),
    ("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.sig"),
]


def paths(n: int) -> list[str]:
    return [f"/api/items/{i}" for i in range(n)]


# --8<-- [start:count]
def http1_bytes(paths: list[str], common: list[tuple[str, str]] = COMMON) -> list[int]:
    """Bytes of each HTTP/1.1 request head: every header, as text, in full, every time."""
    sizes = []
    for path in paths:
        lines = [f"GET {path} HTTP/1.1", "host: shop.example"]
        lines += [f"{name}: {value}" for name, value in common]
        sizes.append(len(("\r\n".join(lines) + "\r\n\r\n").encode()))
    return sizes


def http2_bytes(
    paths: list[str],
    common: list[tuple[str, str]] = COMMON,
) -> tuple[list[int], list[list[tuple[str, str]]]]:
    """Bytes of each HTTP/2 HEADERS frame (9-byte frame header included), and what the
    server decoded from them: one client and one server state machine, a buffer between."""
    client = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
    server = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())  # preface + SETTINGS: not counted
    sizes, decoded = [], []
    for path in paths:
        headers = [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "shop.example"),
            (":path", path),
            *common,
        ]
        client.send_headers(client.get_next_available_stream_id(), headers, end_stream=True)
        wire = client.data_to_send()
        sizes.append(len(wire))
        for event in server.receive_data(wire):  # the server really recovers every header
            if isinstance(event, RequestReceived):
                decoded.append(event.headers)
    return sizes, decoded


# --8<-- [end:count]


def main() -> None:
    n = 100
    h1 = http1_bytes(paths(n))
    h2, decoded = http2_bytes(paths(n))
    assert len(decoded) == n and decoded[-1][3] == (":path", f"/api/items/{n - 1}")
    no_auth = [header for header in COMMON if header[0] != "authorization"]
    h1_no_auth = http1_bytes(paths(n), no_auth)
    h2_no_auth, _ = http2_bytes(paths(n), no_auth)
    print(f"{'':32}{'request 1':>10}{'request 2':>10}{'all 100':>9}")
    for name, sizes in [
        ("HTTP/1.1", h1),
        ("HTTP/2 (HPACK)", h2),
        ("HTTP/1.1 without authorization", h1_no_auth),
        ("HTTP/2 without authorization", h2_no_auth),
    ]:
        print(f"{name:32}{sizes[0]:>10}{sizes[1]:>10}{sum(sizes):>9}  bytes")
    print(
        f"HPACK sent {sum(h1) / sum(h2):.1f}x fewer header bytes than HTTP/1.1,"
        f" {sum(h1_no_auth) / sum(h2_no_auth):.1f}x without the token;"
    )
    print(
        f"the authorization header alone costs {h2[1] - h2_no_auth[1]} bytes per request:"
        " h2 never indexes it"
    )


if __name__ == "__main__":
    main()
