"""Every graded lab (labs/<lab>/) is tested the way a learner runs it (`make lab`):
its stages must pass against the reference solution and fail stage 1 against the
untouched starter — so the stages test something, and the starter leaves work to do."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import random
import re
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from tests.snippet_output import normalise

ROOT = Path(__file__).resolve().parents[2]
LABS = sorted(p.parent for p in (ROOT / "labs").glob("*/stages.py"))


RUN_TIMEOUT = 90  # seconds for one whole run of a lab's stages (the slowest takes ~15)


class LabRunner:
    """`python labs/run.py <lab> --file <file> …`, run by tests/labs/lab_forkserver.py: a
    process that has imported Python's and pytest's modules once and forks a fresh copy of
    itself per run, which calls the runner's main() as `python labs/run.py` does. The
    same code, output and exit status, without ~1.4 s of CPU per run to start Python and
    pytest (about 80 runs here). test_the_make_lab_command_prints_what_the_fork_runner_prints
    runs the command itself and compares."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("lab_forkserver.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.runs = 0

    def __call__(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        assert self.proc.stdin and self.proc.stdout
        self.runs += 1
        out, err = (self.scratch / f"run{self.runs}.{name}" for name in ("out", "err"))
        request = {"argv": argv, "cwd": str(ROOT), "timeout": RUN_TIMEOUT}
        request |= {"stdout": str(out), "stderr": str(err)}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        assert reply, f"tests/labs/lab_forkserver.py exited ({self.proc.wait()})"
        args = [sys.executable, "labs/run.py", *argv]
        stdout, stderr = (p.read_text(encoding="utf-8") for p in (out, err))
        if json.loads(reply).get("timeout"):
            raise subprocess.TimeoutExpired(args, RUN_TIMEOUT, stdout, stderr)
        return subprocess.CompletedProcess(args, json.loads(reply)["returncode"], stdout, stderr)

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()  # the server exits when its input ends
        try:
            self.proc.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def lab_runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabRunner]:
    runner = LabRunner(tmp_path_factory.mktemp("lab-runs"))
    yield runner
    runner.close()


# A test of a wrong solution passes --exitfirst when what it checks is the stage that fails
# (and that every stage before it passes): the run stops at the first failed check instead of
# running the rest of that stage. Sample runs shown on a page, and tests that count the
# failures of a stage, run the whole stage as a learner's `make lab` does.
@pytest.fixture
def run_lab(lab_runner: LabRunner) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(lab: Path, file: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return lab_runner([lab.name, "--file", str(file), *args])

    return run


def stage_count(lab: Path) -> int:
    text = (lab / "stages.py").read_text(encoding="utf-8")
    return len(set(re.findall(r"@pytest\.mark\.stage\((\d+)\)", text)))


def check_sample_run(
    request: pytest.FixtureRequest,
    lab: Path,
    name: str,
    shown: str,
    rerun: str,
    loosen: Callable[[str], str] = lambda text: text,
) -> None:
    """A sample run on a lab's page: written to labs/<lab>/output/<name>.txt with
    --record-outputs, otherwise compared with it (normalised, then loosened for what the
    scheduler decides), and included by the lab's page."""
    recorded = lab / "output" / f"{name}.txt"
    if request.config.getoption("--record-outputs"):
        recorded.parent.mkdir(exist_ok=True)
        recorded.write_text(shown, encoding="utf-8")
    now, then = (loosen(normalise(t)) for t in (shown, recorded.read_text(encoding="utf-8")))
    assert now == then, (
        f"the run shown on the lab page changed; re-record with\n"
        f"  .venv/bin/python -m pytest {__file__} -k {rerun} --record-outputs\n{shown}"
    )
    page = next((ROOT / "docs").glob(f"*/lab-{lab.name}.md")).read_text(encoding="utf-8")
    assert f'--8<-- "labs/{lab.name}/output/{name}.txt"' in page


def solution_with(lab: Path, right, wrong, where: Path) -> Path:
    """The lab's solution with one or more changes (right -> wrong, each to text found once
    in it), written to `where`: a plausible wrong solution for a stage to catch."""
    source = (lab / "solution.py").read_text(encoding="utf-8")
    pairs = zip(right, wrong, strict=True) if isinstance(right, tuple) else [(right, wrong)]
    for old, new in pairs:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    where.write_text(source, encoding="utf-8")
    return where


def assert_caught_at(run, lab: Path, stage: int, why: str) -> None:
    """The run failed at `stage`, every stage before it passed."""
    assert run.returncode == 1, f"{why}: {run.stdout}{run.stderr}"
    total = stage_count(lab)
    assert f"Stage {stage} of {total} failed ({stage - 1} passed)" in run.stdout, (
        f"{why}: {run.stdout}"
    )


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.name)
def test_lab_has_starter_solution_stages_and_a_page(lab: Path):
    for part in ("starter.py", "solution.py", "stages.py"):
        assert (lab / part).is_file(), f"labs/{lab.name}/{part} is missing"
    pages = list((ROOT / "docs").glob(f"*/lab-{lab.name}.md"))
    assert len(pages) == 1, f"no page docs/<chapter>/lab-{lab.name}.md"
    stages = (lab / "stages.py").read_text(encoding="utf-8")
    assert f'PAGE = "{pages[0].relative_to(ROOT).as_posix()}"' in stages
    assert "TODO" in (lab / "starter.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.name)
def test_solution_passes_every_stage(run_lab, lab: Path):
    run = run_lab(lab, lab / "solution.py")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"All {stage_count(lab)} stages passed." in run.stdout, run.stdout
    assert re.search(r"\(seed \d+\)", run.stdout), "the run prints its seed"


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.name)
def test_untouched_starter_fails_stage_1(run_lab, lab: Path):
    run = run_lab(lab, lab / "starter.py")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Stage 1 of" in run.stdout and "FAIL" in run.stdout, run.stdout
    assert "Stage 2/" not in run.stdout, "later stages must not run after a failed stage"


def test_the_make_lab_command_prints_what_the_fork_runner_prints(run_lab):
    """`make lab` runs `python labs/run.py` in a process of its own; the other tests run
    the same main() in a forked copy of a process that imported pytest once. Same seed,
    same output and exit status."""
    lab = ROOT / "labs" / "partitioned-log"  # the quickest lab: its stages need no server
    forked = run_lab(lab, lab / "starter.py", "--seed", "7")
    command = subprocess.run(
        [sys.executable, "labs/run.py", lab.name, "--file", str(lab / "starter.py")]
        + ["--seed", "7"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert command.returncode == forked.returncode == 1, command.stdout + command.stderr
    assert command.stdout == forked.stdout
    assert "Stage 1 of 5 failed (0 passed)" in command.stdout, command.stdout


def test_http_server_stages_catch_a_server_that_serves_one_connection_at_a_time(
    run_lab, tmp_path: Path, request: pytest.FixtureRequest
):
    """Also the sample run on the lab page: recorded from this run, checked on every run."""
    lab = ROOT / "labs" / "http-server"
    solution = (lab / "solution.py").read_text(encoding="utf-8")
    threaded = "threading.Thread(target=handle_connection, args=(sock,), daemon=True).start()"
    assert threaded in solution
    serial = tmp_path / "serial_server.py"
    serial.write_text(solution.replace(threaded, "handle_connection(sock)"), encoding="utf-8")
    run = run_lab(lab, serial, "--seed", "1")
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"Stage 5 of {stage_count(lab)} failed (4 passed)" in run.stdout, run.stdout

    # How many of the 20 concurrent clients fail, and which first, is up to the scheduler.
    which = re.compile(r"\d+ of 20 clients failed; the first: client \d+: (.*?) /echo/\w+")
    check_sample_run(
        request,
        lab,
        "serial-server",
        run.stdout.replace(str(serial), "my_server.py"),
        rerun="one_connection",
        loosen=lambda text: which.sub(
            r"N of 20 clients failed; the first: client N: \1 /echo/W", text
        ),
    )


def test_runner_lists_the_labs_when_none_is_named(capsys: pytest.CaptureFixture[str]):
    spec = importlib.util.spec_from_file_location("labs_run", ROOT / "labs" / "run.py")
    assert spec and spec.loader
    runner = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = runner  # dataclasses look their module up here
    spec.loader.exec_module(runner)
    assert runner.main(["no-such-lab"]) == 2
    out = capsys.readouterr().out
    assert "no lab named 'no-such-lab'" in out
    assert all(lab.name in out for lab in LABS)


# --- slowloris: the sample run and the "Break it" claims of docs/servers/lab-slowloris.md ---

SLOWLORIS = ROOT / "labs" / "slowloris"


def variant(tmp_path: Path, name: str, source: str, old: str, new: str) -> Path:
    """The source with one change, written to tmp_path/<name>.py."""
    assert old in source, f"{name}: {old!r} is no longer in the file it changes"
    path = tmp_path / f"{name}.py"
    path.write_text(source.replace(old, new, 1), encoding="utf-8")
    return path


def test_slowloris_stages_stop_the_naive_server_at_stage_2(
    run_lab, tmp_path: Path, request: pytest.FixtureRequest
):
    """The sample run on the lab page: the starter with only stage 1 done, recorded from
    this run and checked on every run."""
    naive = variant(
        tmp_path,
        "naive_server",
        (SLOWLORIS / "starter.py").read_text(encoding="utf-8"),
        'raise NotImplementedError("stage 1: build the response bytes")',
        # stage 1 done: the solution's response()
        'return (\n        f"HTTP/1.1 {status} {REASONS[status]}\\r\\n"'
        '\n        f"Date: {formatdate(usegmt=True)}\\r\\n"'
        '\n        f"Content-Type: text/plain\\r\\nContent-Length: {len(body)}\\r\\n"'
        '\n        "Connection: close\\r\\n\\r\\n"'
        "\n    ).encode() + body",
    )
    run = run_lab(SLOWLORIS, naive, "--seed", "1")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Stage 2 of 5 failed (1 passed)" in run.stdout, run.stdout

    shown = run.stdout.replace(str(naive), "my_server.py")
    check_sample_run(request, SLOWLORIS, "naive-server", shown, rerun="naive_server")


def test_slowloris_an_idle_timeout_instead_of_a_deadline_fails_stage_3(run_lab, tmp_path: Path):
    """Break it: a timeout that restarts on every read (what settimeout() per recv() is)
    still closes the silent client, never the trickling one."""
    idle_timeout = variant(
        tmp_path,
        "idle_timeout",
        (SLOWLORIS / "solution.py").read_text(encoding="utf-8"),
        "        buffer = self.reading[sock][0]\n",
        "        buffer = self.reading[sock][0]\n"
        "        self.reading[sock] = (buffer, time.monotonic() + TIMEOUT)\n",
    )
    run = run_lab(SLOWLORIS, idle_timeout, "--exitfirst")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Stage 3 of 5 failed (2 passed)" in run.stdout, run.stdout
    assert "PASS  a connection that sends nothing is closed" in run.stdout, run.stdout
    assert "FAIL  a client sending one header byte every 0.1 s" in run.stdout, run.stdout


def test_slowloris_a_bound_below_the_attackers_fails_stage_5_with_503s(run_lab, tmp_path: Path):
    """Break it: MAX_CONNECTIONS = 40 against 50 slowloris connections refuses good clients."""
    forty = variant(
        tmp_path,
        "forty",
        (SLOWLORIS / "solution.py").read_text(encoding="utf-8"),
        "MAX_CONNECTIONS = 64 ",
        "MAX_CONNECTIONS = 40 ",
    )
    run = run_lab(SLOWLORIS, forty, "--exitfirst")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Stage 5 of 5 failed" in run.stdout, run.stdout
    assert re.search(r"FAIL  50 slowloris .*\n.*good clients got \{.*503", run.stdout), run.stdout


def test_slowloris_a_worker_that_waits_for_the_client_to_close_fails_stage_5(
    run_lab, tmp_path: Path
):
    """Break it: lingering in the worker (read until the client closes, LINGER at most) lets
    100 clients that never close queue up behind four workers."""
    lingering = variant(
        tmp_path,
        "lingering_worker",
        (SLOWLORIS / "solution.py").read_text(encoding="utf-8"),
        "            sock.shutdown(socket.SHUT_WR)\n",
        "            sock.shutdown(socket.SHUT_WR)\n"
        "            sock.settimeout(LINGER)\n"
        "            while sock.recv(4096):\n"
        "                pass\n",
    )
    run = run_lab(SLOWLORIS, lingering, "--exitfirst")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Stage 5 of 5 failed" in run.stdout, run.stdout
    assert re.search(r"FAIL  100 clients .*\n.*had no response", run.stdout), run.stdout


def test_http_server_a_body_sent_after_head_fails_stage_7(run_lab, tmp_path: Path):
    """Break it (docs/protocols/lab-http-server.md): a HEAD response with a body breaks the
    next response on the connection."""
    lab = ROOT / "labs" / "http-server"
    with_body = variant(
        tmp_path,
        "head_with_body",
        (lab / "solution.py").read_text(encoding="utf-8"),
        '(b"" if head else body)',
        "body",
    )
    run = run_lab(lab, with_body, "--exitfirst")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Stage 7 of 7 failed (6 passed)" in run.stdout, run.stdout
    assert "FAIL  HEAD gets GET's status and headers and no body" in run.stdout, run.stdout


def test_http_server_stage_6_requires_the_close_after_te_and_cl(run_lab, tmp_path: Path):
    """RFC 9112 §6.1: a server MAY reject Transfer-Encoding with Content-Length (400 is
    this lab's choice) and MUST close the connection after responding. A server that
    answers 400 but keeps the connection open for 3 s fails stage 6."""
    lab = ROOT / "labs" / "http-server"
    lingers = variant(
        tmp_path,
        "te_cl_open",
        (lab / "solution.py").read_text(encoding="utf-8"),
        "                lingering_close(sock)\n",
        '                if "Transfer-Encoding" in str(error):\n'
        "                    time.sleep(3)\n"
        "                lingering_close(sock)\n",
    )
    run = run_lab(lab, lingers, "--exitfirst")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Stage 6 of 7 failed (5 passed)" in run.stdout, run.stdout
    assert "MUST close the connection (RFC 9112 §6.1)" in run.stdout, run.stdout


def test_http_server_a_head_size_check_after_the_loop_fails_the_431_check(run_lab, tmp_path: Path):
    """Break it (lab-http-server.md): check the head's size only once \\r\\n\\r\\n is found,
    and the head that never ends is buffered until the timeout instead of getting 431."""
    lab = ROOT / "labs" / "http-server"
    late = variant(
        tmp_path,
        "late_head_check",
        (lab / "solution.py").read_text(encoding="utf-8"),
        "            if len(self.buffer) > MAX_HEAD_BYTES:\n"
        '                raise HttpError(431, "request head too large")\n',
        "",
    )
    run = run_lab(lab, late)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Stage 6 of 7 failed (5 passed)" in run.stdout, run.stdout
    assert "FAIL  more than 8 KiB of request head gets 431" in run.stdout, run.stdout
    assert run.stdout.count("FAIL  ") == 1, run.stdout


def test_http_server_clearing_the_buffer_fails_only_pipelining(run_lab, tmp_path: Path):
    """Break it (lab-http-server.md): discard what follows a request's body, and the
    pipelined requests are lost; every other check up to stage 4 sends one at a time."""
    lab = ROOT / "labs" / "http-server"
    body = "        request.body = self._chunked(deadline) if length is None else self._take("
    source = (lab / "solution.py").read_text(encoding="utf-8")
    line = next(x for x in source.splitlines(keepends=True) if x.startswith(body))
    cleared = variant(
        tmp_path, "buffer_clear", source, line, line + "        self.buffer.clear()\n"
    )
    run = run_lab(lab, cleared)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Stage 4 of 7 failed (3 passed)" in run.stdout, run.stdout
    assert "FAIL  three requests sent in one write get three responses" in run.stdout, run.stdout
    assert run.stdout.count("FAIL  ") == 1, run.stdout


PARTITIONED_LOG_WRONG = [
    # (stage, what a learner plausibly writes, the text it replaces in the solution, with)
    (
        1,
        "read() consumes what it returns, like a queue",
        "        return records[offset : offset + max_records]",
        "        got = records[offset : offset + max_records]\n"
        "        del records[offset : offset + max_records]\n"
        "        return got",
    ),
    (
        2,
        "partitions chosen round-robin, ignoring the key",
        "        partition = partition_for(key, len(parts))",
        "        partition = sum(len(p.records) for p in parts) % len(parts)",
    ),
    (
        3,
        "Python's hash() of the key: randomised per process",
        "    return zlib.crc32(key) % partitions",
        "    return hash(key) % partitions",
    ),
    (
        3,
        "no check for a header cut short: struct.error on reopen",
        "        if pos + HEADER.size > len(data):",
        "        if False:",
    ),
    (
        4,
        "committed offsets kept in memory only",
        "        os.write(self.offsets_fd, frame(",
        "        0 and os.write(self.offsets_fd, frame(",
    ),
    (
        5,
        "every bad checksum treated as a torn tail",
        "            if end == len(data):",
        "            if True:",
    ),
    (
        5,
        "a length running past the end of the file always read as a torn tail",
        "        if length > MAX_FRAME:",
        "        if False:",
    ),
    (
        5,
        "the oversized record written to the file, then refused",
        "            raise RecordTooLarge(",
        "            os.write(parts[partition_for(key, len(parts))].fd,"
        " frame(struct.pack('>I', len(key)) + key + value))\n"
        "            raise RecordTooLarge(",
    ),
]


@pytest.mark.parametrize(
    ("stage", "why", "right", "wrong"),
    PARTITIONED_LOG_WRONG,
    ids=[w[1] for w in PARTITIONED_LOG_WRONG],
)
def test_partitioned_log_stages_each_catch_a_plausible_wrong_solution(
    run_lab, tmp_path: Path, stage, why, right, wrong
):
    """Each stage fails a solution that gets exactly that stage's idea wrong (and passes
    every stage before it: the mistake is caught where the page teaches it)."""
    lab = ROOT / "labs" / "partitioned-log"
    solution = (lab / "solution.py").read_text(encoding="utf-8")
    assert solution.count(right) == 1, right
    broken = tmp_path / "wrong_solution.py"
    broken.write_text(solution.replace(right, wrong), encoding="utf-8")
    run = run_lab(lab, broken, "--seed", "1", "--exitfirst")
    assert run.returncode == 1, f"{why}: {run.stdout}{run.stderr}"
    assert f"Stage {stage} of {stage_count(lab)} failed" in run.stdout, f"{why}: {run.stdout}"


# --- reverse-proxy: each stage catches a plausible wrong proxy (docs/proxies/lab-reverse-proxy.md)

REVERSE_PROXY = ROOT / "labs" / "reverse-proxy"
WRONG_PROXIES = {  # name: (the change to the solution, the stage that must catch it)
    "drops_the_body": (
        "body = client.read_exactly(content_length(fields, bad))",
        "body = client.read_exactly(content_length(fields, bad))[:0]",
        1,
    ),
    "no_upstream_pool": ("            if self.idle[backend]:", "            if False:", 2),
    # http.client reopens a closed connection by itself; stage 2 must still see the close.
    "closes_every_client_connection": ('version == "HTTP/1.1" and "close"', 'False and "close"', 2),
    "always_the_first_backend": (
        "backend = next(self.turn)",
        "backend = next(iter(self.up))",
        3,
    ),
    # Stage 4, failover: each of these passes stages 1-3.
    "no_failover": ("if failure.sent and method not in IDEMPOTENT:", "if True:", 4),
    "retries_a_post_on_another_backend": (
        "if failure.sent and method not in IDEMPOTENT:",
        "if False:",
        4,
    ),  # RFC 9110 §9.2.2
    "never_marks_a_backend_down": (
        "            self.up[backend] = up\n",
        "            self.up[backend] = True\n",
        4,
    ),
    # answers 502 to a POST whose connection was refused: it was never sent, so it may go on
    "never_resends_a_refused_post": (
        "if failure.sent and method not in IDEMPOTENT:",
        "if method not in IDEMPOTENT:",
        4,
    ),
    # a pooled connection closed unanswered taken for "never sent": the POST goes to b1 too
    "resends_a_post_dropped_on_a_pooled_connection": (
        '                raise HttpError(502, "the backend closed the connection")',
        '                raise BackendFailed(HttpError(502, "closed"), sent=False)',
        4,
    ),  # RFC 9110 §9.2.2
    # a POST dropped on a pooled connection sent again on a new one: b2 receives it twice
    "retries_a_post_on_a_pooled_connection": ("and method in IDEMPOTENT:", ":", 4),
    # a refused connection surfaces as an OSError: the client gets no answer at all
    "no_answer_when_a_backend_refuses": (
        "            raise BackendFailed(failed, sent=False) from None",
        "            raise",
        4,
    ),
    # Stage 5, active health checks: each of these passes stages 1-4.
    "never_brings_a_backend_back": ("pool.mark(backend, up=True)", "pass", 5),
    "any_answer_is_healthy": (r"[23]\d\d[ \r]", r"\d\d\d[ \r]", 5),  # a 503 passes
    "replaces_x_forwarded_for": ('f"{prior}, {peer}" if prior else peer', "peer", 6),
    "forwards_hop_by_hop_headers": (
        "if k.lower() not in HOP_BY_HOP | named]",
        'if k.lower() not in {"connection", "transfer-encoding"}]',
        6,
    ),
    # The fixes of the review of the chapter, each with the wrong proxy it catches:
    "connect_timeout_answered_408": (
        "            raise BackendFailed(error, sent=False) from None",
        "            raise",
        6,
    ),
    "timeout_per_recv_not_per_head": ("left = deadline - time.monotonic()", "left = seconds", 6),
    "no_via": ('forwarded.append(("Via", f"{via}, {VIA}" if via else VIA))', "", 6),
    "forwards_the_clients_connection_header": (
        "if k.lower() not in HOP_BY_HOP | named]",
        'if k.lower() not in HOP_BY_HOP - {"connection"} | named]',
        6,
    ),
}


@pytest.mark.parametrize("name", WRONG_PROXIES)
def test_reverse_proxy_stages_catch_a_plausible_wrong_proxy(
    run_lab, name: str, tmp_path: Path, request: pytest.FixtureRequest
):
    old, new, stage = WRONG_PROXIES[name]
    source = (REVERSE_PROXY / "solution.py").read_text(encoding="utf-8")
    wrong = variant(tmp_path, name, source, old, new)
    sample = name == "no_upstream_pool"  # the sample run on the lab page shows the whole stage
    run = run_lab(REVERSE_PROXY, wrong, "--seed", "1", *([] if sample else ["--exitfirst"]))
    assert run.returncode == 1, run.stdout + run.stderr
    total = stage_count(REVERSE_PROXY)
    assert f"Stage {stage} of {total} failed ({stage - 1} passed)" in run.stdout, run.stdout
    if sample:
        shown = run.stdout.replace(str(wrong), "my_proxy.py")
        check_sample_run(request, REVERSE_PROXY, "no-pool", shown, rerun="no_upstream_pool")


# --- varint-codec: every stage catches a plausible wrong codec (lab-varint-codec.md) ---

VARINT = ROOT / "labs" / "varint-codec"


def varint_variant(tmp_path: Path, name: str, old: str, new: str) -> Path:
    return variant(tmp_path, name, (VARINT / "solution.py").read_text(encoding="utf-8"), old, new)


def test_varint_codec_a_single_recv_fails_stage_3(
    run_lab, tmp_path: Path, request: pytest.FixtureRequest
):
    """The sample run on the lab page: read_frame returning sock.recv(length)."""
    single = varint_variant(
        tmp_path,
        "single_recv",
        '    return _recv_exactly(sock, length, f"a {length}-byte payload")\n',
        "    return sock.recv(length)\n",
    )
    run = run_lab(VARINT, single, "--seed", "1")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Stage 3 of 5 failed (2 passed)" in run.stdout, run.stdout
    assert "FAIL  read_frame reassembles frames when recv() returns 1 to 7" in run.stdout
    # The real socket pair is paced (each recv() returns at most one written piece), so
    # this check fails in every run too, not only when the scheduler splits a frame.
    assert "FAIL  200 frames through a socket pair" in run.stdout, run.stdout
    shown = run.stdout.replace(str(single), "my_codec.py")
    check_sample_run(request, VARINT, "single-recv", shown, rerun="single_recv")


def test_varint_codec_no_continuation_bit_fails_stage_1(run_lab, tmp_path: Path):
    broken = varint_variant(
        tmp_path, "no_continuation", "out.append(n & 0x7F | 0x80)", "out.append(n & 0x7F)"
    )
    run = run_lab(VARINT, broken, "--exitfirst")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Stage 1 of 5 failed" in run.stdout, run.stdout
    assert "encode_varint(128): expected 80 01, got 00 01" in run.stdout, run.stdout


def test_varint_codec_a_32_bit_zigzag_fails_stage_2(run_lab, tmp_path: Path):
    broken = varint_variant(
        tmp_path, "zigzag32", "return (n << 1) ^ (n >> 63)", "return (n << 1) ^ (n >> 31)"
    )
    run = run_lab(VARINT, broken, "--exitfirst")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Stage 2 of 5 failed (1 passed)" in run.stdout, run.stdout


def test_varint_codec_a_limit_checked_after_the_payload_hangs_and_fails_stage_5(
    run_lab, tmp_path: Path
):
    """Break it: check max_size only after reading the payload — the 100 MB prefix hangs."""
    late = varint_variant(
        tmp_path,
        "late_limit",
        "    if length > max_size:\n"
        '        raise CodecError(f"frame of {length} bytes is over the limit of {max_size}")\n'
        '    return _recv_exactly(sock, length, f"a {length}-byte payload")\n',
        '    payload = _recv_exactly(sock, length, f"a {length}-byte payload")\n'
        "    if length > max_size:\n"
        '        raise CodecError(f"frame of {length} bytes is over the limit of {max_size}")\n'
        "    return payload\n",
    )
    run = run_lab(VARINT, late)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Stage 5 of 5 failed (4 passed)" in run.stdout, run.stdout
    assert "a 100 MB frame: no answer within 2.0 s (a hang)" in run.stdout, run.stdout
    # and the two checks whose over-limit prefix is followed by nothing (max_size=1000, the
    # default limit): the frames within the limit pass, but each check hangs on the first
    assert run.stdout.count("FAIL  ") == 3, run.stdout


LIMIT_CHECK = "    if length > max_size:\n"


@pytest.mark.parametrize(
    ("name", "new"),
    [
        ("ignores_max_size", "    if length > MAX_FRAME:\n"),  # checks the module's constant
        ("off_by_one", "    if length >= max_size:\n"),  # refuses a frame of exactly max_size
    ],
    ids=["ignores_max_size", "off_by_one"],
)
def test_varint_codec_a_limit_that_is_not_max_size_fails_stage_5(
    run_lab, tmp_path: Path, name, new
):
    wrong = varint_variant(tmp_path, name, LIMIT_CHECK, new)
    run = run_lab(VARINT, wrong, "--exitfirst")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Stage 5 of 5 failed" in run.stdout, run.stdout
    assert "FAIL  max_size=1000: a 2,000-byte frame is a CodecError" in run.stdout, run.stdout


# Stage 4 has functions of its own (encode_tag, encode_field, decode_field), so a codec
# whose varints, zigzag and frames are right (stages 1-3 pass) can still fail it.
WRONG_FIELD_CODECS = {
    "single_byte_tag": (  # right for fields 1-15 only
        "    return encode_varint(number << 3 | wire_type)\n",
        "    return bytes([number << 3 | wire_type])\n",
        "FAIL  tags of fields 1, 15, 16, 2047, 2048",
    ),
    "tag_read_as_one_byte": (
        "    tag, pos = decode_varint(data, pos)\n",
        "    tag, pos = data[pos], pos + 1\n",
        "FAIL  tags of fields 1, 15, 16, 2047, 2048",
    ),
    "i64_and_i32_swapped": (
        "FIXED_SIZE = {I64: 8, I32: 4}",
        "FIXED_SIZE = {I64: 4, I32: 8}",
        "FAIL  fixed64, fixed32, string, sint64, uint64 from protobuf",
    ),
    "every_non_varint_read_as_len": (
        "    if wire_type == LEN:\n        length, pos = decode_varint(data, pos)\n",
        "    if wire_type != VARINT:\n        length, pos = decode_varint(data, pos)\n",
        "FAIL  to reach field 9, unknown fields",
    ),
    "string_length_in_characters": (
        "        return tag + encode_varint(len(data)) + data\n",
        "        return tag + encode_varint(len(value)) + data\n",
        "FAIL  strings with é, €, 🙂 and sint64s you encode",
    ),
}


@pytest.mark.parametrize("name", WRONG_FIELD_CODECS)
def test_varint_codec_a_wrong_field_codec_passes_stages_1_to_3_and_fails_stage_4(
    run_lab, tmp_path: Path, name: str
):
    old, new, failing = WRONG_FIELD_CODECS[name]
    wrong = varint_variant(tmp_path, name, old, new)
    # The whole stage: the check named in `failing` is not always the stage's first failure.
    run = run_lab(VARINT, wrong, "--seed", "1")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Stage 4 of 5 failed (3 passed)" in run.stdout, run.stdout
    assert failing in run.stdout, run.stdout


# --- mtls: every stage catches a plausible wrong service (docs/security/lab-mtls.md) ---

MTLS = ROOT / "labs" / "mtls"
MTLS_WRONG = [
    # (stage, what a learner plausibly writes, the text it replaces in the solution, with)
    (1, "--cert loaded as trusted CAs, not as the server's certificate",
     "    ctx.load_cert_chain(cert)\n", "    ctx.load_verify_locations(cert)\n"),
    (2, "the client verifies the address it connects to, not --name",
     "server_hostname=args.name", "server_hostname=host"),
    (2, "the client does not present its certificate",
     "        ctx.load_cert_chain(args.cert)\n", "        pass\n"),
    (3, "CERT_OPTIONAL: a client without a certificate reaches the application",
     "ctx.verify_mode = ssl.CERT_REQUIRED", "ctx.verify_mode = ssl.CERT_OPTIONAL"),
    (4, "every authenticated client may call every path",
     "if path in OPEN_PATHS or names & allow[path]:", "if True:"),
    (4, "identity read from the subject's commonName instead of the SAN",
     'for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"}',
     'for rdn in cert.get("subject", ()) for kind, value in rdn if kind == "commonName"}'),
    (5, "reload swaps the certificate but keeps the old trusted CAs",
     '            current["ctx"] = server_context(args.cert, args.client_ca)\n',
     '            current["ctx"].load_cert_chain(args.cert)\n'),
    (5, "says reloaded without reloading",
     '            current["ctx"] = server_context(args.cert, args.client_ca)\n', ""),
    (6, "the handshake in the accept loop: stalled clients block everyone",
     "threading.Thread(target=handle, args=(raw, ctx, allow), daemon=True).start()",
     "handle(raw, ctx, allow)"),
    (6, "no timeout: a stalled handshake holds its connection forever",
     "    raw.settimeout(TIMEOUT)", "    raw.settimeout(None)"),
    (6, "no limit on the request line",
     "        if len(request) >= MAX_REQUEST:\n            return None\n", ""),
    (3, "client certificates optional; a client with none is closed silently after the handshake",
     ("ctx.verify_mode = ssl.CERT_REQUIRED", "        request = read_request(tls)\n"),
     ("ctx.verify_mode = ssl.CERT_OPTIONAL",
      "        if not tls.getpeercert():\n            raise OSError('no client identity')\n"
      "        request = read_request(tls)\n")),
    (4, "a name matches when it contains the allowed name",
     "if path in OPEN_PATHS or names & allow[path]:",
     "if path in OPEN_PATHS or any(a in n for n in names for a in allow[path]):"),
    (4, "a name matches when it ends with the allowed name",
     "if path in OPEN_PATHS or names & allow[path]:",
     "if path in OPEN_PATHS or any(n.endswith(a) for n in names for a in allow[path]):"),
    (4, "a path matches every path that starts with an allowed one",
     "    if method != \"GET\" or path not in allow",
     "    path = next((p for p in allow if path.startswith(p)), path)\n"
     "    if method != \"GET\" or path not in allow"),
    (5, "reload loads the new files into the old context: trust accumulates",
     '            current["ctx"] = server_context(args.cert, args.client_ca)\n',
     '            current["ctx"].load_cert_chain(args.cert)\n'
     '            current["ctx"].load_verify_locations(args.client_ca)\n'),
    (2, "the client turns off the host name check",
     "    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname\n",
     "    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n    ctx.check_hostname = False\n"),
    (6, "the handshake in the accept loop, with a short timeout (0.5 s)",
     ("TIMEOUT = 1.0",
      "threading.Thread(target=handle, args=(raw, ctx, allow), daemon=True).start()"),
     ("TIMEOUT = 0.5", "handle(raw, ctx, allow)")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("stage", "why", "right", "wrong"), MTLS_WRONG, ids=[w[1] for w in MTLS_WRONG]
)
def test_mtls_stages_each_catch_a_plausible_wrong_service(
    run_lab, tmp_path: Path, request: pytest.FixtureRequest, stage, why, right, wrong
):
    """Each stage fails a service that gets exactly that stage's idea wrong (and passes
    every stage before it). Verification stays on in all of them except the client that
    turns off its host name check, which stage 2 exists to catch."""
    broken = solution_with(MTLS, right, wrong, tmp_path / "my_service.py")
    sample = "CERT_OPTIONAL" in why  # the sample run on the lab page shows the whole stage
    run = run_lab(MTLS, broken, "--seed", "1", *([] if sample else ["--exitfirst"]))
    assert_caught_at(run, MTLS, stage, why)
    if sample:
        shown = run.stdout.replace(str(broken), "my_service.py")
        check_sample_run(request, MTLS, "cert-optional", shown, rerun="CERT_OPTIONAL")


def test_mtls_reference_server_and_client_send_close_notify(tmp_path: Path):
    """RFC 8446 section 6.1 (close_notify before closing the write side): the reference
    server's unwrap() lets a client's own unwrap() complete after the answer; the control
    is the variant without it, where the same unwrap() fails on the bare EOF."""
    ca = trustme.CA()
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem.bytes())
    for name, san in (("server", "orders-api.test"), ("orders", "orders.internal")):
        pem = ca.issue_cert(san).private_key_and_cert_chain_pem.bytes()
        (tmp_path / f"{name}.pem").write_bytes(pem)
    source = (MTLS / "solution.py").read_text(encoding="utf-8")
    bare = variant(tmp_path, "bare", source, "            tls.unwrap()\n", "            pass\n")

    def closing(file: Path) -> str:
        argv = [sys.executable, str(file), "serve", "--port", "0"]
        argv += ["--cert", str(tmp_path / "server.pem"), "--client-ca", str(tmp_path / "ca.pem")]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            port = int(re.search(r":(\d+)$", proc.stdout.readline().strip())[1])
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(tmp_path / "ca.pem")
            ctx.load_cert_chain(tmp_path / "orders.pem")
            with (
                socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                ctx.wrap_socket(raw, server_hostname="orders-api.test") as tls,
            ):
                tls.sendall(b"GET /health\n")
                assert tls.recv(4096).startswith(b"200")
                try:
                    tls.unwrap()
                    return "close_notify"
                except (ssl.SSLError, OSError) as error:
                    return str(error)
        finally:
            proc.terminate()
            proc.wait(5)

    assert closing(MTLS / "solution.py") == "close_notify"
    assert closing(bare) != "close_notify"


# --- circuit-breaker: each stage catches a plausible wrong breaker (lab-circuit-breaker.md)

CIRCUIT_BREAKER = ROOT / "labs" / "circuit-breaker"
CIRCUIT_BREAKER_WRONG = [
    # (stage, what a learner plausibly writes, the text it replaces in the solution, with)
    (1, "the backend's error swallowed: call() returns None",
     "            result = fn(*args, **kwargs)\n        except Exception:\n"
     "            self._record(False, trial)\n            raise\n",
     "            result = fn(*args, **kwargs)\n        except Exception:\n"
     "            self._record(False, trial)\n            return None\n"),
    (1, "failures counted in total, not in a row: a success does not reset them",
     "self._failures = 0 if ok else self._failures + 1",
     "self._failures = self._failures if ok else self._failures + 1"),
    (2, "opens after N + 1 failures (> instead of >=)",
     "if self._failures >= self.failure_threshold:",
     "if self._failures > self.failure_threshold:"),
    (2, "an open circuit still calls the backend (to see if it is back), then raises",
     "        trial = self._admit()\n        try:\n            result = fn(",
     "        try:\n            trial = self._admit()\n        except CircuitOpen:\n"
     "            fn(*args, **kwargs)\n            raise\n        try:\n            result = fn("),
    (3, "a failed trial reopens without restarting the cool-down",
     "self._opened_at = self._opened_at if ok else now",
     "self._opened_at = self._opened_at"),
    (3, "half-open lets every caller through until one succeeds",
     '            if self._state == HALF_OPEN:\n                raise CircuitOpen(',
     '            if self._state == HALF_OPEN:\n                return True\n'
     '                raise CircuitOpen('),
    (3, "the cool-down timed from the first failure of the streak, not from the opening",
     ("                self._failures = 0 if ok else self._failures + 1\n",
      "                    self._state, self._opened_at = OPEN, now\n"),
     ("                self._failures = 0 if ok else self._failures + 1\n"
      "                if self._failures == 1:\n                    self._first = now\n",
      "                    self._state, self._opened_at = OPEN, self._first\n")),
    (3, "closing after the trial keeps the old failure count",
     "(CLOSED, 0) if ok", "(CLOSED, self._failures) if ok"),
    (3, "one lock held around the whole call: a call made during the trial waits for ever",
     ("    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:\n"
      "        trial = self._admit()\n",
      "        self._lock = threading.Lock()  # threads and asyncio tasks alike"),
     ("    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:\n"
      "        with self._whole_call:\n            return self._call(fn, *args, **kwargs)\n\n"
      "    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:\n"
      "        trial = self._admit()\n",
      "        self._whole_call = threading.Lock()\n        self._lock = threading.Lock()  #")),
    (4, "exponential backoff without jitter",
     "return self.rng.uniform(0, min(self.cap, self.base * 2 ** min(attempt, 64)))",
     "return min(self.cap, self.base * 2 ** min(attempt, 64))"),
    (4, "a retry budget that never forgets: credit from every request since start",
     "while times and now - times[0] >= self.window:",
     "while times and now - times[0] >= math.inf:"),
    (4, "retries without a budget (only max_attempts)",
     "        if not self.budget.try_retry():\n            return None\n", ""),
    (4, "CircuitOpen retried like any other error",
     "if isinstance(error, CircuitOpen) or attempt + 1 >= self.max_attempts:",
     "if attempt + 1 >= self.max_attempts:"),
    (4, "2 ** n uncapped: delay(2000) overflows the float",
     "self.base * 2 ** min(attempt, 64)", "self.base * 2**attempt"),
    (4, "the wait after call n fails is delay(n + 1): the first is up to 2 * base",
     "        return self.delay(attempt)\n", "        return self.delay(attempt + 1)\n"),
    (4, "Retrier.call does not record the request: a fresh budget never pays",
     "        self.budget.record_request()\n        attempt = 0\n", "        attempt = 0\n"),
    (4, "Retrier.call records a request per attempt: retries pay for themselves",
     "        self.budget.record_request()\n        attempt = 0\n        while True:\n",
     "        attempt = 0\n        while True:\n            self.budget.record_request()\n"),
    (4, "jitter from a Random of its own, not the rng given",
     "self.rng = rng if rng is not None else random.Random()", "self.rng = random.Random()"),
    (5, "no lock: check the state, read the clock, claim the trial",
     "        now = self.clock()\n        with self._lock:\n            if self._state == CLOSED:\n"
     "                return False\n"
     "            if self._state == OPEN and now - self._opened_at >= self.reset_timeout:\n"
     "                self._state = HALF_OPEN\n                return True\n",
     "        if self._state == CLOSED:\n            return False\n"
     "        if self._state == OPEN and self.clock() - self._opened_at >= self.reset_timeout:\n"
     "            self._state = HALF_OPEN\n            return True\n"
     "        now = self.clock()\n        with self._lock:\n"),
    (5, "the clock read first, as the hint says, then check-and-claim without the lock",
     "        now = self.clock()\n        with self._lock:\n            if self._state == CLOSED:\n"
     "                return False\n"
     "            if self._state == OPEN and now - self._opened_at >= self.reset_timeout:\n"
     "                self._state = HALF_OPEN\n                return True\n",
     "        now = self.clock()\n        if self._state == CLOSED:\n            return False\n"
     "        if self._state == OPEN and now - self._opened_at >= self.reset_timeout:\n"
     "            self._state = HALF_OPEN\n            return True\n"
     "        with self._lock:\n"),
    (5, "call_async hands the coroutine function to call()",
     "        trial = self._admit()\n        try:\n            result = await fn(",
     "        return await self.call(fn, *args, **kwargs)\n"
     "        trial = self._admit()\n        try:\n            result = await fn("),
    (5, "any success closes the circuit, even one admitted before it opened",
     "            if trial:\n                self._state, self._failures",
     "            if trial or ok:\n                self._state, self._failures"),
    (5, "a cancelled trial is not handled: half-open for ever",
     "        except BaseException:  # asyncio.CancelledError is a BaseException\n"
     "            self._abandon(trial)\n            raise\n", ""),
    (6, "reset_timeout checked with <= 0: NaN and infinity pass",
     '_check_number("reset_timeout", reset_timeout, low=0, low_ok=False, high=math.inf)',
     'if reset_timeout <= 0:\n            raise ValueError(f"reset_timeout must be > 0,'
     ' got {reset_timeout!r}")'),
    (6, "ratio read as a percentage: up to 100 accepted",
     '_check_number("ratio", ratio, low=0, low_ok=True, high=1)',
     '_check_number("ratio", ratio, low=0, low_ok=True, high=100)'),
    (6, "failure_threshold=0 accepted",
     '_check_count("failure_threshold", failure_threshold, low=1)',
     '_check_count("failure_threshold", failure_threshold, low=0)'),
    (6, "an error that does not say which parameter",
     'raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")',
     'raise ValueError(f"must be an integer >= {low}, got {value!r}")'),
]  # fmt: skip


@pytest.mark.parametrize(
    ("stage", "why", "right", "wrong"),
    CIRCUIT_BREAKER_WRONG,
    ids=[w[1] for w in CIRCUIT_BREAKER_WRONG],
)
def test_circuit_breaker_stages_each_catch_a_plausible_wrong_breaker(
    run_lab, tmp_path: Path, request: pytest.FixtureRequest, stage, why, right, wrong
):
    """Each stage fails a breaker that gets exactly that stage's idea wrong (and passes
    every stage before it). The one without a budget is the sample run on the lab page."""
    broken = solution_with(CIRCUIT_BREAKER, right, wrong, tmp_path / "my_breaker.py")
    sample = why.startswith("retries without a budget")
    run = run_lab(CIRCUIT_BREAKER, broken, "--seed", "1", *([] if sample else ["--exitfirst"]))
    assert_caught_at(run, CIRCUIT_BREAKER, stage, why)
    if sample:
        shown = run.stdout.replace(str(broken), "my_breaker.py")
        check_sample_run(request, CIRCUIT_BREAKER, "no-budget", shown, rerun="budget")


def test_circuit_breaker_gate_passes_a_breaker_that_reads_the_clock_under_its_lock(
    run_lab, tmp_path: Path
):
    """The control of stage 5's gate: a correct breaker that reads the clock while holding
    its lock (so no second thread can reach the gate) waits out the gate once and passes."""
    source = (CIRCUIT_BREAKER / "solution.py").read_text(encoding="utf-8")
    under_lock = variant(
        tmp_path,
        "clock_under_lock",
        source,
        "        now = self.clock()\n        with self._lock:\n"
        "            if self._state == CLOSED:",
        "        with self._lock:\n            now = self.clock()\n"
        "            if self._state == CLOSED:",
    )
    run = run_lab(CIRCUIT_BREAKER, under_lock, "--seed", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "All 6 stages passed." in run.stdout, run.stdout


def load(path: Path, name: str):  # noqa: ANN201 - a module
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_circuit_breaker_the_numbers_on_the_lab_page(tmp_path: Path, pytestconfig: pytest.Config):
    """The model's numbers on docs/design/lab-circuit-breaker.md, for three seeds: the
    reference's outage at 0.057x and brownout at 1.100x the healthy rate, 1.30x with a
    budget that never forgets, 1.74-1.77x without a budget; the busiest 10 ms of 100
    clients' first retries 12 to 19 with full jitter, 100 without. For one seed: breakers
    that never open leave the outage at the budget's 1.10x, and the budget that never
    forgets gives 1.20x, 1.30x and 1.50x after 30, 60 and 120 s healthy."""
    # labs/conftest.py registers the stage marker for the labs' own runs; here, by hand
    pytestconfig.addinivalue_line("markers", "stage(n): a lab stage")
    stages = load(CIRCUIT_BREAKER / "stages.py", "circuit_breaker_stages")
    source = (CIRCUIT_BREAKER / "solution.py").read_text(encoding="utf-8")
    wrong = {w[1]: (w[2], w[3]) for w in CIRCUIT_BREAKER_WRONG}

    def breaker_module(name: str):  # noqa: ANN202 - a module
        if name == "reference":
            return load(CIRCUIT_BREAKER / "solution.py", "cb_reference")
        old, new = wrong[name]
        return load(variant(tmp_path, name.split(":")[0][:20].replace(" ", "_"), source, old, new),
                    f"cb_{len(name)}")  # fmt: skip

    outage, brownout = 1.0, 0.5  # the share of calls that fail for 30 s

    def ratio(lab, seed: int, failing: float, healthy: float = 60.0, **config) -> float:  # noqa: ANN001
        phases = [(healthy, 0.0), (healthy + 30, failing), (healthy + 40, 0.0)]
        calls = stages.storm(lab, seed, phases, **config)
        return stages.rate(calls, healthy, healthy + 30) / stages.rate(calls, 0, healthy)

    def busiest(lab, seed: int) -> int:  # noqa: ANN001
        clock = stages.Clock(0.0)
        waits = []
        for c in range(100):
            budget = lab.RetryBudget(ratio=1.0, window=10.0, clock=clock)
            budget.record_request()
            breaker = lab.CircuitBreaker(100, 10.0, clock=clock)
            r = lab.Retrier(breaker, budget, base=0.1, cap=1.0, rng=random.Random(f"{seed}:{c}"))
            waits.append(r.next_delay(0, stages.BackendDown()))
        return max(sum(int(w / 0.01) == i for w in waits) for i in range(11))

    reference = breaker_module("reference")
    forgets_nothing = breaker_module(
        "a retry budget that never forgets: credit from every request since start"
    )
    no_budget = breaker_module("retries without a budget (only max_attempts)")
    no_jitter = breaker_module("exponential backoff without jitter")
    forgets: list[float] = []  # after 60 s healthy
    for seed in range(3):
        assert round(ratio(reference, seed, outage), 3) == 0.057
        assert round(ratio(reference, seed, brownout, threshold=30), 3) == 1.100
        forgets.append(ratio(forgets_nothing, seed, brownout, threshold=30))
        assert round(forgets[-1], 2) == 1.30
        without_budget = ratio(no_budget, seed, brownout, threshold=30)
        assert without_budget >= 1.74 and without_budget <= 1.77, without_budget
        assert 12 <= busiest(reference, seed) <= 19
        assert busiest(no_jitter, seed) == 100
    # "In the outage the budget would allow 1.1x too": breakers that never open
    assert round(ratio(reference, 0, outage, threshold=10**9), 2) == 1.10
    # "worse the longer it was healthy": 30, 60 and 120 s of credit before the brownout
    trend = [ratio(forgets_nothing, 0, brownout, healthy=30.0, threshold=30), forgets[0],
             ratio(forgets_nothing, 0, brownout, healthy=120.0, threshold=30)]  # fmt: skip
    assert [round(r, 2) for r in trend] == [1.20, 1.30, 1.50], trend


def test_circuit_breaker_a_cancelled_trial_reopens_or_gives_its_place_back(
    tmp_path: Path, pytestconfig: pytest.Config
):
    """Stage 5 accepts both designs for a cancelled trial, as the page says: the reference
    reopens for a fresh cool-down, and a breaker that gives the trial's place back passes
    the same check. The page's reason for the reference's choice: after a caller's
    asyncio.wait_for cancels a trial to a hung backend, the reference answers CircuitOpen
    (a reset_timeout of quiet), the other sends the next call straight to the backend."""
    pytestconfig.addinivalue_line("markers", "stage(n): a lab stage")
    stages = load(CIRCUIT_BREAKER / "stages.py", "circuit_breaker_stages")
    source = (CIRCUIT_BREAKER / "solution.py").read_text(encoding="utf-8")
    reference = load(CIRCUIT_BREAKER / "solution.py", "cb_reference")
    gives_back = load(
        variant(tmp_path, "gives_back", source,
                "        if trial:\n            self._record(False, trial)\n",
                "        if trial:\n            with self._lock:\n"
                "                self._state = OPEN\n"),
        "cb_gives_back",
    )  # fmt: skip
    for lab in (reference, gives_back):
        stages.test_a_cancelled_trial_does_not_leave_it_half_open(lab)

    def after_a_timeout(lab) -> tuple[str, int, str]:  # noqa: ANN001
        clock, backend = stages.Clock(), stages.Backend()
        b = stages.opened(lab, clock, backend)
        clock.now += 10.0
        before, backend.down = backend.calls, False

        async def scenario() -> str:
            async def hangs() -> None:
                backend()
                await asyncio.Event().wait()

            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(b.call_async(hangs), 0.01)

            async def ok() -> str:
                return "ok"

            try:
                await b.call_async(ok)
            except lab.CircuitOpen:
                return "CircuitOpen"
            return "admitted"

        return asyncio.run(scenario()), backend.calls - before, b.state

    assert after_a_timeout(reference) == ("CircuitOpen", 1, "open")
    assert after_a_timeout(gives_back) == ("admitted", 1, "closed")


def test_circuit_breaker_stage_6_takes_a_type_error_for_a_float_count(
    tmp_path: Path, pytestconfig: pytest.Config
):
    """The stability page's breaker answers failure_threshold=2.5 with a TypeError (a wrong
    type), as range(2.5) does; stage 6 accepts that for a count, if it names the parameter,
    and still fails a TypeError for a value of the right type (reset_timeout=-1) or one
    that does not say which parameter."""
    pytestconfig.addinivalue_line("markers", "stage(n): a lab stage")
    stages = load(CIRCUIT_BREAKER / "stages.py", "circuit_breaker_stages")
    source = (CIRCUIT_BREAKER / "solution.py").read_text(encoding="utf-8")
    count_check = "    if not isinstance(value, int) or isinstance(value, bool) or value < low:\n"
    type_error = (
        "    if isinstance(value, float):\n"
        '        raise TypeError(f"{name} must be an int, got {value!r}")\n' + count_check
    )
    typed = load(variant(tmp_path, "type_error", source, count_check, type_error), "cb_typed")
    for kind, name, values in stages.BAD:
        stages.test_bad_configuration_is_rejected_naming_the_parameter(typed, kind, name, values)
    unnamed = load(
        variant(tmp_path, "type_error_unnamed", source, count_check,
                type_error.replace("{name} must", "must")),
        "cb_typed_unnamed",
    )  # fmt: skip
    assert stages.rejects(unnamed, "CircuitBreaker", "failure_threshold", 2.5) == (
        "TypeError('must be an int, got 2.5') does not name failure_threshold"
    )
    number_check = "    ok = isinstance(value, (int, float)) and not isinstance(value, bool)\n"
    wrong = load(
        variant(tmp_path, "type_error_number", source, number_check,
                number_check + '    if value < 0:\n        raise TypeError(f"{name}: negative")\n'),
        "cb_typed_number",
    )  # fmt: skip
    assert stages.rejects(wrong, "CircuitBreaker", "reset_timeout", -1) == (
        "TypeError: reset_timeout: negative"
    )
