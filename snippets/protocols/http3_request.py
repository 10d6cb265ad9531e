"""HTTP/3 over QUIC on loopback with aioquic: TLS 1.3 inside a UDP transport, verified.

Run: python snippets/protocols/http3_request.py
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import trustme
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import HandshakeCompleted, QuicEvent


# --8<-- [start:certs]
@contextmanager
def certificates() -> Iterator[dict[str, str]]:
    """A throwaway CA and a certificate for "localhost" it signed, as files in a temp dir."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    with tempfile.TemporaryDirectory() as tmp:
        files = {name: str(Path(tmp, f"{name}.pem")) for name in ("ca", "cert", "key")}
        ca.cert_pem.write_to_path(files["ca"])
        cert.cert_chain_pems[0].write_to_path(files["cert"])
        cert.private_key_pem.write_to_path(files["key"])
        yield files


# --8<-- [end:certs]


# --8<-- [start:server]
class H3Server(QuicConnectionProtocol):
    """One QUIC connection; HTTP/3 on top: answer each request on its own stream."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)

    def quic_event_received(self, event: QuicEvent) -> None:
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived) and h3_event.stream_ended:
                path = dict(h3_event.headers)[b":path"]
                body = b"you asked for %s on stream %d" % (path, h3_event.stream_id)
                self.h3.send_headers(h3_event.stream_id, [(b":status", b"200")])
                self.h3.send_data(h3_event.stream_id, body, end_stream=True)
        # after this method returns, aioquic packs what we queued into UDP datagrams


# --8<-- [end:server]


# --8<-- [start:serve]
@asynccontextmanager
async def h3_server(files: dict[str, str]) -> AsyncIterator[tuple[str, int]]:
    config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    config.load_cert_chain(files["cert"], files["key"])
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(
        lambda: QuicServer(configuration=config, create_protocol=H3Server),
        local_addr=("127.0.0.1", 0),  # one UDP socket for every connection
    )
    try:
        yield transport.get_extra_info("sockname")
    finally:
        server.close()


# --8<-- [end:serve]


# --8<-- [start:client]
class H3Client(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.responses: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self.partial: dict[int, tuple[int, bytes]] = {}
        self.alpn: str | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted):
            self.alpn = event.alpn_protocol
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived | DataReceived):
                status, body = self.partial.get(h3_event.stream_id, (0, b""))
                if isinstance(h3_event, HeadersReceived):
                    status = int(dict(h3_event.headers)[b":status"])
                else:
                    body += h3_event.data
                self.partial[h3_event.stream_id] = (status, body)
                if h3_event.stream_ended:
                    self.responses[h3_event.stream_id].set_result((status, body))

    async def get(self, path: str) -> tuple[int, int, bytes]:
        """GET path on a new bidirectional stream: (stream id, status, body)."""
        stream_id = self._quic.get_next_available_stream_id()  # 0, 4, 8, …
        self.responses[stream_id] = asyncio.get_running_loop().create_future()
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
        self.transmit()
        status, body = await self.responses[stream_id]
        return stream_id, status, body


# --8<-- [end:client]


# --8<-- [start:connect]
@asynccontextmanager
async def h3_client(address: tuple[str, int], ca_file: str | None) -> AsyncIterator[H3Client]:
    """Connect and finish the handshake; TLS verification stays on (CERT_REQUIRED)."""
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name="localhost")
    config.load_verify_locations(ca_file)  # trust our CA (None: aioquic loads certifi's bundle)
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        lambda: H3Client(QuicConnection(configuration=config)), local_addr=("127.0.0.1", 0)
    )
    try:
        client.connect(address)
        async with asyncio.timeout(5):
            await client.wait_connected()  # raises ConnectionError if the handshake fails
        yield client
    finally:
        client.close()
        async with asyncio.timeout(5):
            await client.wait_closed()
        transport.close()


# --8<-- [end:connect]


async def demo() -> tuple[str | None, list[tuple[int, int, bytes]]]:
    with certificates() as files:
        async with h3_server(files) as address, h3_client(address, files["ca"]) as client:
            async with asyncio.timeout(5):
                results = await asyncio.gather(*(client.get(p) for p in ["/a", "/b", "/c"]))
            return client.alpn, results


def main() -> None:
    alpn, results = asyncio.run(demo())
    print(f"QUIC handshake done, certificate verified, ALPN protocol: {alpn}")
    for stream_id, status, body in results:
        print(f"stream {stream_id}: {status} {body.decode()}")


if __name__ == "__main__":
    main()
