"""A socket is a kernel object behind a file descriptor: a connected TCP pair made by hand,
step by step, and the same bytes moved with plain os.write/os.read.

Run: python snippets/protocols/layers_socket.py
"""

from __future__ import annotations

import os
import socket


# --8<-- [start:pair]
def connected_pair_by_hand() -> tuple[socket.socket, socket.socket, socket.socket]:
    """(listener, client, server side): the calls a server and a client make."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # IPv4 + TCP
    listener.bind(("127.0.0.1", 0))  # an address; port 0: the kernel picks a free one
    listener.listen(1)  # now the kernel completes handshakes for us (backlog 1)
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.settimeout(5)
    client.connect(listener.getsockname())  # SYN, SYN+ACK, ACK
    server, _peer = listener.accept()  # a NEW socket for this one connection
    server.settimeout(5)
    return listener, client, server


def describe(name: str, sock: socket.socket) -> str:
    try:
        peer = "{}:{}".format(*sock.getpeername())
    except OSError:
        peer = "(none: it only accepts)"
    local = "{}:{}".format(*sock.getsockname())
    return f"{name:<9} fd=~{sock.fileno()}  local={local}  peer={peer}"


# --8<-- [end:pair]


# --8<-- [start:fd]
def bytes_through_file_descriptors(client: socket.socket, server: socket.socket) -> bytes:
    """The socket API is one way in; the file-descriptor calls every file has are another."""
    os.write(client.fileno(), b"written with os.write")
    return os.read(server.fileno(), 100)


# --8<-- [end:fd]


def main() -> None:
    listener, client, server = connected_pair_by_hand()
    with listener, client, server:
        for name, sock in [("listener", listener), ("client", client), ("server", server)]:
            print(describe(name, sock))
        same = client.getsockname() == server.getpeername()
        print(f"the client's local address is the server side's peer: {same}")
        print("one TCP connection = (client ip, client port, server ip, server port)")
        data = bytes_through_file_descriptors(client, server)
        print(f"read with os.read on the server's fd: {data!r}")
        a, b = socket.socketpair()  # no network at all: two connected Unix-domain sockets
        with a, b:
            a.sendall(b"same API, no IP")
            print(f"socketpair() family {a.family.name}: {b.recv(100)!r}")


if __name__ == "__main__":
    main()
