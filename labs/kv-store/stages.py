"""The crash-safe key-value store lab, stage by stage (docs/databases/lab-kv-store.md).

Black-box tests: each test starts the learner's file as
`python <file> --port 0 --data <dir>`, waits for `listening on 127.0.0.1:<port>`, talks
the line protocol to that port, and stops, restarts or kills the program.

Run: make lab LAB=kv-store FILE=path/to/your_store.py
"""

from __future__ import annotations

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
MAX_KEY = 256  # bytes; the page's protocol refuses longer keys
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
        assert got == expected, f"sent {short(line)}: expected {short(expected)}, got {short(got)}"


def short(text: str, keep: int = 60) -> str:
    """repr() of text, with the middle of a long one left out (values can be 60 KB)."""
    if len(text) <= keep:
        return repr(text)
    return f"{text[: keep // 2]!r} ... {text[-keep // 2 :]!r} ({len(text)} characters)"


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
    """Unknown or incomplete commands, an empty value, a key over 256 bytes: ERROR ..."""
    _, port = start(spawn, tmp_path)
    bad_lines = [  # (line, what it is)
        ("FROB x", "an unknown command"),
        ("PUT lonely-key", "a PUT without a value"),
        ("PUT empty-value ", "a PUT with an empty value"),  # the value is the rest of the line
        ("GET", "a GET without a key"),
        ("DEL", "a DEL without a key"),
        ("GET two words", "a GET with two keys"),
        ("DEL two words", "a DEL with two keys"),
        ("", "an empty line"),
        (f"PUT {'k' * (MAX_KEY + 1)} too-long-key", f"a key over {MAX_KEY} bytes"),
    ]
    with Client(port) as client:
        for bad, what in bad_lines:
            got = client.cmd(bad)
            assert got.startswith("ERROR"), (
                f"{what}: sent {short(bad)}, expected 'ERROR ...', got {short(got)}"
            )
        afterwards = [  # (line, expected, why)
            ("GET empty-value", "NOT_FOUND", "the refused PUT with an empty value stored nothing"),
            ("GET two", "NOT_FOUND", "the refused commands with two keys touched no key 'two'"),
            ("PUT after-errors ok", "OK", "the connection still works after the errors"),
        ]
        for line, expected, why in afterwards:
            got = client.cmd(line)
            assert got == expected, (
                f"every malformed command got ERROR; then, to check that {why}: sent"
                f" {short(line)}, expected {short(expected)}, got {short(got)}"
            )


@pytest.mark.stage(1)
def test_bytes_that_are_not_utf8_get_an_error(spawn, tmp_path):
    """A command with bytes that are not UTF-8 answers ERROR ..., stores nothing, no crash."""
    program, port = start(spawn, tmp_path)
    with Client(port) as client:
        for raw in [b"PUT latin1 caf\xe9", b"PUT \xff\xfe v", b"GET \xc3"]:
            client.sock.sendall(raw + b"\n")
            got = client.reply(repr(raw))
            assert got.startswith("ERROR"), f"sent {raw!r}: expected 'ERROR ...', got {got!r}"
        client.expect("GET latin1", "NOT_FOUND")
        client.expect("PUT after-bad-bytes ok", "OK")
    program.assert_alive()


# Values whose line is under the 64 KiB limit but which grow when a log format escapes
# them (JSON: '"' -> 2 bytes, '\x01' -> 6, one emoji -> 12): a store may refuse them, but
# only with ERROR, and only before acknowledging anything.
ESCAPING = {
    "quotes": '"' * 60_000,
    "backslashes": "\\" * 60_000,
    "control": "\x01" * 30_000,
    "emoji": "\U0001f600" * 15_000,
}
# The same, escaping to about 60 KB: the reference solution's records hold these.
ESCAPING_FITS = {f"{key}-fits": value[: len(value) // 3] for key, value in ESCAPING.items()}


def put_maybe_refused(client: Client, key: str, value: str) -> bool:
    """PUT a value the store may refuse; True if it answered OK, False for ERROR ..."""
    got = client.cmd(f"PUT {key} {value}")
    assert got == "OK" or got.startswith("ERROR"), (
        f"sent PUT {key} <{len(value.encode())} bytes>: expected OK or 'ERROR ...',"
        f" got {short(got)}"
    )
    return got == "OK"


@pytest.mark.stage(1)
def test_values_that_escape_past_a_record_limit_are_stored_or_refused(spawn, tmp_path):
    """Long values of quotes, backslashes, control characters, emoji: OK, or ERROR ..."""
    program, port = start(spawn, tmp_path)
    with Client(port) as client:
        for key, value in ESCAPING.items():
            stored = put_maybe_refused(client, key, value)
            client.expect(f"GET {key}", f"VALUE {value}" if stored else "NOT_FOUND")
        client.expect("PUT after-big-values ok", "OK")
    program.assert_alive()


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


@pytest.mark.stage(3)
def test_values_that_need_escaping_survive_a_restart(spawn, tmp_path):
    """Values with quotes, backslashes, control characters, emoji survive a restart.

    Every acknowledged PUT is there afterwards, and so is the PUT that followed a refused
    one (a store that acknowledged a record its own recovery rejects loses both)."""
    program, port = start(spawn, tmp_path)
    values = {
        "small-quoted": 'she said "hi" \\ back',
        "small-unicode": "naïve café 漢字 \U0001f600",
        "small-control": "a\tb\x01c\x7f",
    }
    expected: dict[str, str | None] = {}
    with Client(port) as client:
        for key, value in values.items():
            client.expect(f"PUT {key} {value}", "OK")
            expected[key] = value
        for key, value in {**ESCAPING_FITS, **ESCAPING}.items():
            stored = put_maybe_refused(client, key, value)
            expected[key] = value if stored else None
            client.expect(f"PUT after-{key} ok", "OK")  # this one must not be lost
            expected[f"after-{key}"] = "ok"
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
        program.kill()  # SIGKILL: no handler runs, nothing is flushed
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
