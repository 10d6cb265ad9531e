"""UDP can lose and reorder datagrams; stop-and-wait with retransmission delivers every one.

Run: python snippets/protocols/udp_reliability.py
"""

from __future__ import annotations

import random
import socket
import struct
import threading
from collections import Counter

SEQ = struct.Struct("!I")  # a 4-byte sequence number in front of every datagram


# --8<-- [start:relay]
class LossyRelay:
    """A bad network on loopback: forwards datagrams between one client and a server,
    dropping some and holding some back until the next one has passed (reordering).
    The choices come from a seeded generator, one per direction, so a run is repeatable."""

    def __init__(self, server: tuple[str, int], drop: float, reorder: float, seed: int) -> None:
        self.server, self.drop, self.reorder = server, drop, reorder
        self.client: tuple[str, int] | None = None
        self.rng = {"up": random.Random(seed), "down": random.Random(seed + 1)}
        self.held: dict[str, tuple[bytes, tuple[str, int]] | None] = {"up": None, "down": None}
        self.stats: Counter[str] = Counter()
        self.changed = threading.Condition()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)  # lets the loop notice close()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()

    def _forward(self, direction: str, data: bytes, dest: tuple[str, int]) -> None:
        self.stats[f"{direction} seen"] += 1
        roll = self.rng[direction].random()
        if roll < self.drop:
            self.stats[f"{direction} dropped"] += 1
            return
        held, self.held[direction] = self.held[direction], None
        if held is None and roll < self.drop + self.reorder:
            self.held[direction] = (data, dest)  # overtaken by the next datagram
            self.stats[f"{direction} reordered"] += 1
            return
        for packet, to in [(data, dest)] + ([held] if held else []):
            self.sock.sendto(packet, to)
            self.stats[f"{direction} forwarded"] += 1

    def _run(self) -> None:
        while self.running:
            try:
                data, sender = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            with self.changed:
                if sender == self.server and self.client:
                    self._forward("down", data, self.client)
                else:
                    self.client = sender
                    self._forward("up", data, self.server)
                self.changed.notify_all()

    def wait_seen(self, direction: str, count: int, timeout: float = 5.0) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: self.stats[f"{direction} seen"] >= count, timeout):
                raise TimeoutError(f"relay saw fewer than {count} datagrams")

    def flush(self) -> None:
        """Deliver anything still held back (the late datagram does arrive, eventually)."""
        with self.changed:
            for direction, held in self.held.items():
                if held:
                    self.sock.sendto(*held)
                    self.stats[f"{direction} forwarded"] += 1
                    self.held[direction] = None

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


# --8<-- [end:relay]


def udp_socket(timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(timeout)
    return sock


# --8<-- [start:count]
def count_arrivals(n: int, drop: float, reorder: float, seed: int) -> list[int]:
    """Fire n numbered datagrams through the relay; return the numbers in arrival order."""
    with udp_socket(timeout=5) as receiver, udp_socket(timeout=5) as sender:
        relay = LossyRelay(receiver.getsockname(), drop, reorder, seed)
        try:
            for seq in range(n):
                sender.sendto(SEQ.pack(seq), relay.address)
            relay.wait_seen("up", n)
            relay.flush()
            arrived = relay.stats["up forwarded"]
            return [SEQ.unpack(receiver.recv(64))[0] for _ in range(arrived)]
        finally:
            relay.close()


# --8<-- [end:count]


# --8<-- [start:arq]
def receive_in_order(sock: socket.socket, delivered: list[bytes], stop: threading.Event) -> None:
    """Receiver: deliver the next expected sequence number once; ACK everything seen."""
    expected = 0
    while not stop.is_set():
        try:
            packet, peer = sock.recvfrom(65535)
        except TimeoutError:
            continue
        (seq,) = SEQ.unpack_from(packet)
        if seq == expected:  # new and in order: deliver it
            delivered.append(packet[SEQ.size :])
            expected += 1
        if seq < expected:  # new or a duplicate: (re-)acknowledge, the last ACK may be lost
            sock.sendto(SEQ.pack(seq), peer)


def send_reliably(
    sock: socket.socket,
    to: tuple[str, int],
    messages: list[bytes],
    rto: float = 0.03,
    max_tries: int = 30,
) -> int:
    """Sender: send one message, wait up to rto for its ACK, resend on timeout.
    Returns the number of retransmissions; raises if a message never gets through."""
    retransmissions = 0
    sock.settimeout(rto)
    for seq, message in enumerate(messages):
        for _ in range(max_tries):
            sock.sendto(SEQ.pack(seq) + message, to)
            try:
                while SEQ.unpack(sock.recv(64))[0] != seq:
                    pass  # a late ACK for an earlier message: ignore it
                break  # acknowledged
            except TimeoutError:
                retransmissions += 1
        else:
            raise TimeoutError(f"message {seq} not acknowledged after {max_tries} tries")
    return retransmissions


# --8<-- [end:arq]


def deliver_over_lossy_link(
    messages: list[bytes], drop: float, reorder: float, seed: int
) -> tuple[list[bytes], int, Counter[str]]:
    """Run both ends of stop-and-wait through a LossyRelay; return what was delivered."""
    delivered: list[bytes] = []
    stop = threading.Event()
    with udp_socket(timeout=0.05) as receiver, udp_socket(timeout=0.03) as sender:
        relay = LossyRelay(receiver.getsockname(), drop, reorder, seed)
        worker = threading.Thread(target=receive_in_order, args=(receiver, delivered, stop))
        worker.start()
        try:
            retransmissions = send_reliably(sender, relay.address, messages)
        finally:
            stop.set()
            worker.join()
            relay.close()
    return delivered, retransmissions, relay.stats


def main() -> None:
    arrived = count_arrivals(n=100, drop=0.1, reorder=0.05, seed=7)
    late = sum(1 for i, seq in enumerate(arrived) if seq < max(arrived[: i + 1]))
    print(
        f"plain UDP: sent 100, arrived {len(arrived)}, lost {100 - len(arrived)},"
        f" out of order {late}"
    )
    messages = [f"message {i}".encode() for i in range(30)]
    delivered, retransmissions, stats = deliver_over_lossy_link(messages, 0.15, 0.05, seed=7)
    print(f"stop-and-wait: sent 30, delivered {len(delivered)}, in order: {delivered == messages}")
    # "~": the drop decisions are seeded, but how many datagrams they apply to is not: a
    # retransmission fires whenever an ACK takes longer than the 30 ms timeout.
    print(
        f"  the relay dropped ~{stats['up dropped']} data and ~{stats['down dropped']} ACKs,"
        f" reordered ~{stats['up reordered'] + stats['down reordered']};"
        f" the sender retransmitted ~{retransmissions} times"
    )


if __name__ == "__main__":
    main()
