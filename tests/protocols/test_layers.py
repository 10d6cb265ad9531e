"""Layers (docs/protocols/layers.md): each test asserts the lesson a snippet shows."""

from __future__ import annotations

import re
import struct

from tests.conftest import load_snippet
from tests.snippet_output import ROOT

layers_socket = load_snippet("protocols/layers_socket")
layers_encapsulation = load_snippet("protocols/layers_encapsulation")


def test_accept_returns_a_new_socket_whose_peer_is_the_client():
    listener, client, server = layers_socket.connected_pair_by_hand()
    with listener, client, server:
        assert len({listener.fileno(), client.fileno(), server.fileno()}) == 3
        assert server.getsockname() == listener.getsockname()  # same local address ...
        assert server.getpeername() == client.getsockname()  # ... told apart by the peer
        assert layers_socket.bytes_through_file_descriptors(client, server) == (
            b"written with os.write"
        )


def test_each_layer_adds_its_header_around_the_untouched_payload():
    (_, payload), (_, segment), (_, packet), (_, frame) = layers_encapsulation.wrap(b"hi")
    assert payload == b"hi"
    assert len(segment) == 20 + 2 and segment.endswith(b"hi")
    assert len(packet) == 20 + len(segment) and packet.endswith(segment)
    assert len(frame) == 14 + len(packet) and frame.endswith(packet)
    assert packet[9] == 6  # IPv4 protocol field: TCP
    assert struct.unpack("!H", frame[12:14])[0] == 0x0800  # EtherType: IPv4
    assert struct.unpack("!H", packet[2:4])[0] == len(packet)  # total length field


def test_checksums_verify_and_catch_a_flipped_bit():
    packet = layers_encapsulation.wrap(b"hello")[2][1]
    header = packet[:20]
    assert layers_encapsulation.checksum(header) == 0  # a correct header sums to zero
    corrupted = header[:8] + bytes([header[8] ^ 0x01]) + header[9:]  # TTL off by one bit
    assert layers_encapsulation.checksum(corrupted) != 0


def test_the_layer_table_places_every_snippet_of_the_chapter():
    page = (ROOT / "docs" / "protocols" / "layers.md").read_text(encoding="utf-8")
    table = "\n".join(line for line in page.splitlines() if line.startswith("|"))
    for snippet in sorted((ROOT / "snippets" / "protocols").glob("*.py")):
        assert re.search(rf"`{snippet.stem}`", table), f"{snippet.stem} is not in the layer table"
