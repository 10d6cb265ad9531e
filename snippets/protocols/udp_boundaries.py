"""UDP keeps message boundaries: one sendto() is one datagram is one recvfrom().

Run: python snippets/protocols/udp_boundaries.py
"""

from __future__ import annotations

import socket


# --8<-- [start:boundaries]
def send_and_receive(messages: list[bytes], bufsize: int = 65535) -> list[bytes]:
    """Send each message as one datagram to a local socket; read them back one by one."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        for message in messages:
            sender.sendto(message, receiver.getsockname())  # no connection, no handshake
        # Each recvfrom() returns exactly one datagram; bytes beyond bufsize are discarded.
        return [receiver.recvfrom(bufsize)[0] for _ in messages]


# --8<-- [end:boundaries]


def main() -> None:
    messages = [b"hello", b"world", b"x" * 1000]
    received = send_and_receive(messages)
    print(f"sent {len(messages)} datagrams, received {len(received)}: {[len(m) for m in received]}")
    print("boundaries intact:", received == messages)
    truncated = send_and_receive([b"x" * 1000], bufsize=100)
    print(f"a 1000-byte datagram read with a 100-byte buffer gives {len(truncated[0])} bytes;")
    print("the other 900 are gone: UDP never hands you the rest in a later read")


if __name__ == "__main__":
    main()
