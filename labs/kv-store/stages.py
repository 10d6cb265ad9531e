"""The crash-safe key-value store lab, stage by stage (docs/databases/lab-kv-store.md).

Black-box tests: each test starts the learner's file as
`python <file> --port 0 --data <dir>`, waits for `listening on 127.0.0.1:<port>`, talks
the line protocol to that port, and stops, restarts or kills the program.

Run: make lab LAB=kv-store FILE=path/to/your_store.py
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from random import Random

import pytest

PAGE = "docs/databases/lab-kv-store.md"
STAGES = {
    1: "get, put and delete in memory",
    2: "every write goes to a log first",
    3: "survives a clean restart",
    4: "survives SIGKILL at a random point",
    5: "compaction keeps the log bounded",
    6: "concurrent clients and oversized input",
}
READY = r"listening on 127\.0\.0\.1:(\d+)"
TIMEOUT = 2.0  # seconds to wait for any reply; a correct store answers in ~1 ms
LOG = "kv.log"


class Client:
    """One connection speaking the line protocol; every read has a timeout."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def reply(self, sent: str = "") -> str:
        try:
            raw = self.file.readline(1 << 20)
        except TimeoutError:
            raise AssertionError(f"sent {sent!r}: no reply within {TIMEOUT} s") from None
        if not raw.endswith(b"\n"):
            raise AssertionError(f"sent {sent!r}: the connection closed (got {raw!r})")
        return raw.decode().rstrip("\r\n")

    def cmd(self, line: str) -> str:
        self.send(line)
        return self.reply(line)

    def expect(self, line: str, expected: str) -> None:
        got = self.cmd(line)
        assert got == expected, f"sent {line!r}: expected {expected!r}, got {got!r}"


Spawn = Callable[..., object]


def start(spawn: Spawn, data: Path) -> tuple[object, int]:
    program = spawn("--port", "0", "--data", str(data))
    port = int(program.wait_for(READY)[1])
    return program, port


def random_items(rng: Random, n: int, size: int = 40) -> dict[str, str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return {
        f"key-{i}-{rng.randrange(10**6)}": "".join(rng.choice(letters + " ") for _ in range(size))
        .strip()
        .replace("  ", " ")
        or "x"
        for i in range(n)
    }


def check_all(port: int, expected: dict[str, str | None]) -> None:
    with Client(port) as client:
        for key, value in expected.items():
            client.expect(f"GET {key}", "NOT_FOUND" if value is None else f"VALUE {value}")


# --- stage 1 -----------------------------------------------------------------------------


@pytest.mark.stage(1)
def test_put_then_get(spawn, tmp_path):
    """PUT answers OK and GET returns the value."""
    _, port = start(spawn, tmp_path)
    with Client(port) as client:
        client.expect("PUT greeting hello", "OK")
        client.expect("GET greeting", "VALUE hello")


@pytest.mark.stage(1)
def test_missing_keys_overwrites_and_deletes(spawn, tmp_path):
    """NOT_FOUND for missing keys; PUT overwrites; DEL removes; values may hold spaces."""
    _, port = start(spawn, tmp_path)
    with Client(port) as client:
        client.expect("GET nobody", "NOT_FOUND")
        client.expect("PUT k first value", "OK")
        client.expect("PUT k second value, longer", "OK")
        client.expect("GET k", "VALUE second value, longer")
        client.expect("DEL k", "OK")
        client.expect("GET k", "NOT_FOUND")
        client.expect("DEL k", "NOT_FOUND")


@pytest.mark.stage(1)
def test_malformed_commands_get_an_error_and_the_connection_stays_usable(spawn, tmp_path):
    """Unknown or incomplete commands answer ERROR ...; the connection keeps working."""
    _, port = start(spawn, tmp_path)
    with Client(port) as client:
        for bad in ["FROB x", "PUT lonely-key", "GET", "DEL", "GET two words", ""]:
            got = client.cmd(bad)
            assert got.startswith("ERROR"), f"sent {bad!r}: expected 'ERROR ...', got {got!r}"
        client.expect("PUT after-errors ok", "OK")


# --- stage 2 -----------------------------------------------------------------------------


@pytest.mark.stage(2)
def test_every_acknowledged_write_is_already_in_the_log(spawn, tmp_path, rng):
    """Before answering OK, PUT and DEL append to <data>/kv.log (the file grows)."""
    _, port = start(spawn, tmp_path)
    log = tmp_path / LOG
    with Client(port) as client:
        for key, value in random_items(rng, 20).items():
            before = log.stat().st_size if log.exists() else 0
            client.expect(f"PUT {key} {value}", "OK")
            assert log.exists(), f"after an acknowledged PUT there is no {LOG} in --data"
            grew = log.stat().st_size - before
            assert grew >= len(value), (
                f"PUT {key} <{len(value)} bytes> was acknowledged but {LOG} grew by {grew} bytes"
            )
            before = log.stat().st_size
            client.expect(f"DEL {key}", "OK")
            assert log.stat().st_size > before, "DEL was acknowledged but the log did not grow"


# --- stage 3 -----------------------------------------------------------------------------


@pytest.mark.stage(3)
def test_data_survives_a_clean_restart(spawn, tmp_path, rng):
    """Stop (SIGTERM) and start again on the same --data: every key, every delete, twice."""
    program, port = start(spawn, tmp_path)
    items = random_items(rng, 60)
    expected: dict[str, str | None] = dict(items)
    with Client(port) as client:
        for key, value in items.items():
            client.expect(f"PUT {key} {value}", "OK")
        for key in rng.sample(sorted(items), 15):
            client.expect(f"DEL {key}", "OK")
            expected[key] = None
    for _ in range(2):
        program.stop()
        program, port = start(spawn, tmp_path)
        check_all(port, expected)


# --- stage 4 -----------------------------------------------------------------------------


def kill_after_acks(program, port: int, items: dict[str, str], acks: int, request) -> list[str]:
    """Pipeline every PUT; SIGKILL the store as soon as `acks` OKs have arrived."""
    lines = [f"PUT {key} {value}" for key, value in items.items()]
    acked: list[str] = []
    with Client(port) as client:
        sender = threading.Thread(
            target=lambda: client.sock.sendall("".join(f"{line}\n" for line in lines).encode()),
            daemon=True,
        )
        sender.start()
        for key in items:
            if len(acked) == acks:
                break
            assert client.reply(f"PUT {key} ...") == "OK", f"PUT {key} was not acknowledged"
            acked.append(key)
        os.killpg(program.proc.pid, signal.SIGKILL)  # no handler runs, nothing is flushed
        program.proc.wait(timeout=5)
    request.node.lab_programs.remove(program)  # killed on purpose: not a crash of theirs
    return acked


@pytest.mark.stage(4)
def test_no_acknowledged_write_is_lost_to_sigkill(spawn, tmp_path, rng, request):
    """SIGKILL while writes stream in: after a restart every acknowledged PUT is there."""
    program, port = start(spawn, tmp_path)
    items = random_items(rng, 3000, size=60)
    acked = kill_after_acks(program, port, items, rng.randrange(50, 1500), request)
    _, port = start(spawn, tmp_path)
    check_all(port, {key: items[key] for key in acked})


@pytest.mark.stage(4)
def test_a_torn_tail_is_truncated_not_kept(spawn, tmp_path, rng, request):
    """Garbage after the last record (a torn write) is cut off; later writes survive."""
    program, port = start(spawn, tmp_path)
    items = random_items(rng, 200)
    acked = kill_after_acks(program, port, items, 100, request)
    torn = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
    with (tmp_path / LOG).open("ab") as log:
        log.write(torn)  # half a record, as a crash mid-write() leaves it
    program, port = start(spawn, tmp_path)
    check_all(port, {key: items[key] for key in acked})
    with Client(port) as client:
        client.expect("PUT after-crash still-here", "OK")
    program.stop()
    _, port = start(spawn, tmp_path)
    check_all(port, {"after-crash": "still-here", **{key: items[key] for key in acked}})


# --- stage 5 -----------------------------------------------------------------------------


@pytest.mark.stage(5)
def test_compaction_keeps_the_log_bounded(spawn, tmp_path, rng):
    """3,000 overwrites of 10 keys (~900 KB written): kv.log stays under 256 KiB."""
    program, port = start(spawn, tmp_path)
    latest: dict[str, str] = {}
    with Client(port) as client:
        for batch in range(30):
            lines = []
            for _ in range(100):
                key, value = f"hot-{rng.randrange(10)}", f"{batch}-" + "v" * 300
                latest[key] = value
                lines.append(f"PUT {key} {value}")
            client.sock.sendall("".join(f"{line}\n" for line in lines).encode())
            for line in lines:
                assert client.reply(line[:20]) == "OK"
    size = (tmp_path / LOG).stat().st_size
    assert size < 256 * 1024, f"after 3000 overwrites of 10 keys {LOG} is {size} bytes"
    program.stop()
    _, port = start(spawn, tmp_path)
    check_all(port, dict(latest))


# --- stage 6 -----------------------------------------------------------------------------


@pytest.mark.stage(6)
def test_concurrent_clients_each_see_their_own_writes(spawn, tmp_path):
    """8 clients at once, one silent connection open: every PUT and GET answered."""
    _, port = start(spawn, tmp_path)
    errors: list[str] = []
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):  # says nothing

        def work(n: int) -> None:
            try:
                with Client(port) as client:
                    for i in range(50):
                        client.expect(f"PUT c{n}-{i} value-{n}-{i}", "OK")
                        client.expect(f"GET c{n}-{i}", f"VALUE value-{n}-{i}")
            except AssertionError as error:
                errors.append(str(error))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors, errors[0]
    check_all(port, {f"c{n}-49": f"value-{n}-49" for n in range(8)})


@pytest.mark.stage(6)
def test_an_oversized_line_is_refused_and_the_store_keeps_serving(spawn, tmp_path):
    """A 1 MiB line gets ERROR (or a closed connection), never a hang or a crash."""
    program, port = start(spawn, tmp_path)
    with Client(port) as client:
        try:
            client.sock.sendall(b"PUT big " + b"x" * (1 << 20) + b"\n")
            reply = client.reply("PUT big <1 MiB>")
            assert reply.startswith("ERROR"), f"a 1 MiB line got {reply!r}, expected ERROR"
        except (AssertionError, ConnectionError) as error:
            if "closed" not in str(error) and not isinstance(error, ConnectionError):
                raise
    program.assert_alive()
    with Client(port) as client:
        client.expect("PUT small fine", "OK")
        client.expect("GET big", "NOT_FOUND")
