"""QUIC loses a packet of one stream and only that stream waits: no TCP head-of-line blocking.

Run: python snippets/protocols/quic_loss.py
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trustme
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import QuicEvent

BIG = 3000  # stream 0's response: two full-size packets and a bit
SMALL = 20  # every other response fits in a small packet
TRANSMIT_EACH = True  # send each response before queueing the next (Break it: False)


class H3Server(QuicConnectionProtocol):
    """Answer each request at once, in order: stream 0 gets BIG bytes, the others SMALL.
    With TRANSMIT_EACH, each response is sent before the next is queued, so it gets its own
    packets. Without it, aioquic sends once, after the whole datagram of requests is handled,
    and packs the queued streams' frames into packets one after another."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)

    def respond(self, stream_id: int, size: int) -> None:
        self.h3.send_headers(stream_id, [(b":status", b"200")])
        self.h3.send_data(stream_id, b"x" * size, end_stream=True)
        if TRANSMIT_EACH:
            self.transmit()

    def quic_event_received(self, event: QuicEvent) -> None:
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived) and h3_event.stream_ended:
                self.respond(h3_event.stream_id, BIG if h3_event.stream_id == 0 else SMALL)


class H3Client(QuicConnectionProtocol):
    """Send GETs; record when each stream's response is complete."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.done: dict[int, asyncio.Future[float]] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived | DataReceived) and h3_event.stream_ended:
                self.done[h3_event.stream_id].set_result(time.perf_counter())

    def get(self, path: str) -> asyncio.Future[float]:
        stream_id = self._quic.get_next_available_stream_id()
        self.done[stream_id] = asyncio.get_running_loop().create_future()
        self.h3.send_headers(
            stream_id,
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", b"localhost"),
                (b":path", path.encode()),
            ],
            end_stream=True,
        )
        return self.done[stream_id]


# --8<-- [start:relay]
class LossyRelay(asyncio.DatagramProtocol):
    """A network path between one client and the server. Once armed, it drops every
    server -> client datagram larger than `larger_than` bytes for `window` seconds after
    the first such drop. QUIC packets are encrypted, so the relay cannot see stream ids;
    size is how it picks out stream 0's data here — the originals and any retransmission."""

    def __init__(self, server: tuple[str, int], larger_than: int, window: float) -> None:
        self.server, self.larger_than, self.window = server, larger_than, window
        self.client: tuple[str, int] | None = None
        self.armed, self.drop_until, self.dropped = False, 0.0, 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport
        if addr != self.server:  # client -> server: always forwarded
            self.client = addr
            self.transport.sendto(data, self.server)
            return
        if self.armed and len(data) > self.larger_than:
            now = time.perf_counter()
            if not self.drop_until:
                self.drop_until = now + self.window
            if now < self.drop_until:
                self.dropped += 1
                return
        if self.client:
            self.transport.sendto(data, self.client)


# --8<-- [end:relay]


@asynccontextmanager
async def endpoint(factory: Any) -> AsyncIterator[tuple[Any, tuple[str, int]]]:
    """A UDP endpoint on 127.0.0.1, port 0; closed on exit."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(factory, local_addr=("127.0.0.1", 0))
    try:
        yield protocol, transport.get_extra_info("sockname")
    finally:
        protocol.close() if isinstance(protocol, QuicServer) else transport.close()


# --8<-- [start:run]
async def streams_through_loss(n: int = 10, window: float = 0.2) -> tuple[dict[int, float], int]:
    """n requests on one QUIC connection; stream 0's packets are lost for `window` seconds.
    Returns each stream's completion time (seconds after sending) and the drop count."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    with tempfile.TemporaryDirectory() as tmp:
        ca_file, cert_file, key_file = (str(Path(tmp, f"{x}.pem")) for x in "abc")
        ca.cert_pem.write_to_path(ca_file)
        cert.cert_chain_pems[0].write_to_path(cert_file)
        cert.private_key_pem.write_to_path(key_file)
        server_config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
        server_config.load_cert_chain(cert_file, key_file)
        client_config = QuicConfiguration(
            is_client=True, alpn_protocols=H3_ALPN, server_name="localhost"
        )
        client_config.load_verify_locations(ca_file)

        async with (
            endpoint(lambda: QuicServer(configuration=server_config, create_protocol=H3Server)) as (
                _,
                server_address,
            ),
            endpoint(lambda: LossyRelay(server_address, 1000, window)) as (relay, relay_address),
            endpoint(lambda: H3Client(QuicConnection(configuration=client_config))) as (client, _),
            asyncio.timeout(5),
        ):
            client.connect(relay_address)
            await client.wait_connected()  # the handshake is not disturbed
            relay.armed = True
            start = time.perf_counter()
            futures = [client.get(f"/{i}") for i in range(n)]
            client.transmit()
            finished = await asyncio.gather(*futures)
            client.close()
            await client.wait_closed()
    return {4 * i: t - start for i, t in enumerate(finished)}, relay.dropped


# --8<-- [end:run]


def main() -> None:
    window = 0.2
    done, dropped = asyncio.run(streams_through_loss(n=10, window=window))
    others = [t for stream_id, t in done.items() if stream_id != 0]
    print(f"stream 0's packets were dropped for {window * 1000:.1f} ms (~{dropped} datagrams)")
    print(f"stream 0 completed after {done[0] * 1000:.1f} ms")
    print(
        f"the other {len(others)} streams: median {statistics.median(others) * 1000:.1f} ms,"
        f" last {max(others) * 1000:.1f} ms"
    )
    ahead = sum(t < done[0] for t in others)
    print(f"{ahead} of {len(others)} other streams completed before stream 0")


if __name__ == "__main__":
    main()
