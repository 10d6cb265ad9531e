"""Durability and the WAL (docs/databases/durability.md): each test asserts the lesson."""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import load_snippet
from tests.services.postgresql import crashable_postgresql

wal_log = load_snippet("databases/wal_log")
wal_power_loss = load_snippet("databases/wal_power_loss")


def test_sigkill_mid_record_leaves_a_torn_tail_that_recovery_truncates(tmp_path):
    log = tmp_path / "wal.log"
    acked = wal_log.kill_mid_write(log, pause_at=50)
    assert acked == [f"k{i}" for i in range(50)]
    state, dropped = wal_log.recover(log)
    assert dropped > 0  # half of record 50 was on disk
    assert set(acked) <= set(state) and "k50" not in state
    assert wal_log.recover(log) == (state, 0)  # truncated: the next recovery finds it clean


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_at_a_random_point_loses_no_acknowledged_write(tmp_path, seed):
    log = tmp_path / "wal.log"
    acked = wal_log.kill_mid_write(log, kill_after=random.Random(seed).randrange(1, 300))
    state, _ = wal_log.recover(log)
    assert acked and all(key in state for key in acked), f"seed {seed}"


def test_a_silent_writer_times_out_instead_of_hanging_the_reader():
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"ack 0\nack")  # one whole line, then nothing more
        # Noise budget: no time is compared. The 0.2 s deadline only bounds the wait for a
        # line that never comes; the first line is already in the pipe, so load cannot
        # make it miss the deadline.
        lines = wal_log.lines_until(read_end, time.monotonic() + 0.2)
        assert next(lines) == "ack 0\n"
        with pytest.raises(TimeoutError):
            next(lines)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_damaged_record_in_the_middle_is_an_error_not_a_silent_truncation():
    good = wal_log.encode({"op": "put", "key": "a", "value": "1"})
    data = bytearray(good * 3)
    data[len(good) + wal_log.HEADER.size] ^= 0x01  # one bit in the second record's payload
    with pytest.raises(wal_log.CorruptLogError, match="checksum"):
        wal_log.scan(bytes(data))


def test_a_garbage_length_field_is_refused_instead_of_allocated():
    data = wal_log.HEADER.pack(2**31, 0) + b"x" * 100
    with pytest.raises(wal_log.CorruptLogError, match="claims"):
        wal_log.scan(data)


def test_a_damaged_last_record_is_a_torn_tail():
    good = wal_log.encode({"op": "put", "key": "a", "value": "1"})
    data = bytearray(good * 2)
    data[-1] ^= 0xFF
    records, end = wal_log.scan(bytes(data))
    assert len(records) == 1 and end == len(good)


ops = st.lists(
    st.tuples(st.sampled_from(["put", "delete"]), st.text(max_size=5), st.text(max_size=20)),
    max_size=20,
)


@given(ops=ops, cut=st.integers(min_value=0))
def test_a_log_cut_at_any_byte_recovers_a_prefix_of_its_records(ops, cut):
    records = [{"op": op, "key": k, "value": v} for op, k, v in ops]
    data = b"".join(wal_log.encode(r) for r in records)
    cut = cut % (len(data) + 1)
    decoded, end = wal_log.scan(data[:cut])
    assert decoded == records[: len(decoded)] and end <= cut
    assert end == sum(len(wal_log.encode(r)) for r in decoded)  # stops at a record boundary


def test_power_loss_loses_acknowledged_writes_only_without_fsync():
    no_fsync = wal_power_loss.count_losses("no fsync")
    assert no_fsync["lost on kill"] == 0  # the kernel still had them
    assert no_fsync["lost on power loss"] > 0 and no_fsync["fsyncs"] == 0
    for policy in ["fsync each", "group commit"]:
        totals = wal_power_loss.count_losses(policy)
        assert totals["lost on kill"] == totals["lost on power loss"] == 0, policy


def test_out_of_order_writeback_leaves_whole_records_after_the_damage_only_without_fsync():
    """Why "refuse to start on damage followed by valid records" (wal_log.scan) holds only
    while at most one record can be unsynced: with many unsynced records, a power loss
    that keeps a later page and loses an earlier one is an ordinary crash, not corruption,
    and replay must stop at the first bad record (as PostgreSQL's does)."""
    assert wal_power_loss.count_losses("no fsync")["holes"] > 0
    assert wal_power_loss.count_losses("fsync each")["holes"] == 0
    # the control: written back in offset order, no hole can appear
    disk = wal_power_loss.ForgetfulDisk()
    for i in range(200):
        disk.write(wal_power_loss.record(f"k{i}"))
    disk._persist([3, 4])  # pages 3 and 4 reached the disk, 0-2 did not
    written = [f"k{i}" for i in range(200)]
    assert wal_power_loss.intact_after_damage(disk.after_power_loss(), written)
    disk._persist([0, 1, 2])
    assert not wal_power_loss.intact_after_damage(disk.after_power_loss(), written)


def test_group_commit_needs_a_tenth_of_the_fsyncs():
    each = wal_power_loss.count_losses("fsync each")
    group = wal_power_loss.count_losses("group commit")
    assert each["fsyncs"] == each["acked"]
    assert group["fsyncs"] * 10 == group["acked"]


def test_the_forgetful_disk_keeps_fsynced_bytes_through_power_loss():
    """A power loss keeps exactly the durable pages: all unsynced data is gone (LazyFS)."""
    disk = wal_power_loss.ForgetfulDisk()
    disk.write(b"durable")
    disk.fsync()
    disk.write(b"volatile")
    assert disk.after_power_loss() == b"durable"
    assert disk.after_process_crash() == b"durablevolatile"
    disk.writeback()
    disk.writeback()  # dirty since before the last round: expired, so written back
    assert disk.after_power_loss() == b"durablevolatile"


COMMITS = 300  # per setting; each its own transaction


def test_postgres_crash_keeps_synchronous_commits_and_loses_the_last_asynchronous_ones():
    """A real PostgreSQL (fsync on) is SIGKILLed, every process at once, right after its
    commits; crash recovery then replays the WAL. synchronous_commit = on: every commit
    was written and flushed before it was acknowledged. off: the last commits were still in
    the WAL buffers in shared memory, never written, and are gone — a server crash is
    enough, no power cut needed."""
    settings = {
        "wal_writer_delay": "10s",  # the WAL writer flushes async commits this often (max)
        "autovacuum": "off",  # no other transaction commits (flushing our WAL) meanwhile
        "bgwriter_lru_maxpages": "0",  # nor writes a data page, which flushes its WAL first
    }
    with crashable_postgresql(settings) as cluster:
        server = cluster.start()
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("CREATE TABLE commits (mode text NOT NULL, n int NOT NULL)")
            for mode in ("on", "off"):
                conn.execute(f"SET synchronous_commit = {mode}")
                for n in range(COMMITS):  # autocommit: one transaction, one COMMIT each
                    conn.execute("INSERT INTO commits VALUES (%s, %s)", (mode, n))
            cluster.crash()  # with the session still open: nothing is shut down cleanly
        server = cluster.start()  # crash recovery: redo from the last checkpoint
        with psycopg.connect(server.url()) as conn:
            rows = conn.execute("SELECT mode, n FROM commits ORDER BY mode, n").fetchall()
    kept = {mode: [n for m, n in rows if m == mode] for mode in ("on", "off")}
    assert kept["on"] == list(range(COMMITS))  # every acknowledged synchronous commit
    assert len(kept["off"]) < COMMITS, "no asynchronous commit was lost"
    assert kept["off"] == list(range(len(kept["off"])))  # a prefix: recovery stays in order


def test_without_writeback_no_fsync_loses_everything_on_power_loss():
    """The page's "Break it": a machine that never flushes on its own."""
    disk, acked = wal_power_loss.run_until_crash("no fsync", 500, writeback_every=10**9)
    assert len(acked) == 500
    assert wal_power_loss.recovered_keys(disk.after_power_loss()) == set()
    assert wal_power_loss.recovered_keys(disk.after_process_crash()) == set(acked)


def load_kv_solution():
    spec = importlib.util.spec_from_file_location("kv_solution", "labs/kv-store/solution.py")
    solution = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(solution)
    return solution


kv = load_kv_solution()


def test_kv_store_lab_fsync_mode_syncs_the_directory_of_a_new_log(tmp_path, monkeypatch):
    """fsync(2): a new file's directory entry is durable only after an fsync of the
    directory. The lab's reference solution, in --fsync mode, must do it before its first
    acknowledgement — for the log, and for each directory it had to create (in that
    directory's parent); an existing log needs no directory fsync."""
    solution = load_kv_solution()  # its own module: the patches below stay in this test
    opened, synced = {}, []
    real_open, real_fsync = os.open, os.fsync

    def traced_open(path, *args, **kwargs):
        fd = real_open(path, *args, **kwargs)
        opened[fd] = Path(path)
        return fd

    def traced_fsync(fd):
        synced.append(opened.get(fd))
        real_fsync(fd)

    monkeypatch.setattr(solution.os, "open", traced_open)
    monkeypatch.setattr(solution.os, "fsync", traced_fsync)
    data = tmp_path / "new" / "data"  # two directories Store must create
    store = solution.Store(data, fsync=True)
    store.put("k", "v")
    store.close()
    first_ack = synced.index(store.path)
    for directory in (tmp_path, tmp_path / "new", data):  # parents of the created ones
        assert directory in synced[:first_ack], f"{directory} not synced before the ack"
    assert synced.index(tmp_path) < synced.index(tmp_path / "new")  # top down
    synced.clear()
    solution.Store(data, fsync=True).close()  # everything exists: nothing new to sync
    assert synced == []


def power_cut_image(seed: int, fsync: bool) -> tuple[bytes, list[dict[str, str]]]:
    """The lab's log written to the power-loss model (some values span 4 KiB pages), then
    the power cut: what survives is what the model made durable."""
    rng = random.Random(seed)
    disk = wal_power_loss.ForgetfulDisk(random.Random(seed))
    ops = []
    for i in range(rng.randrange(100, 400)):
        op = {"op": "put", "key": f"k{i}", "value": "v" * rng.choice([50, 50, 50, 6000])}
        disk.write(kv.encode(op))
        ops.append(op)
        if fsync:
            disk.fsync()
        if (i + 1) % 20 == 0:
            disk.writeback()
    return disk.after_power_loss(), ops


def test_kv_store_lab_scan_refuses_damage_only_where_one_record_can_be_unsynced():
    """The lab's scan: strict (--fsync) raises CorruptLog on damage followed by valid
    records; without fsync a power cut can leave exactly that, so it stops at the first
    bad record (PostgreSQL's rule) and the store starts."""
    good = kv.encode({"op": "put", "key": "a", "value": "1"})
    data = bytearray(good * 3)
    data[len(good) + kv.HEADER.size] ^= 0x01  # one bit in the second record's payload
    with pytest.raises(kv.CorruptLog, match="valid records after it"):
        kv.scan(bytes(data), strict=True)
    assert kv.scan(bytes(data), strict=False) == (
        [{"op": "put", "key": "a", "value": "1"}],
        len(good),
    )
    garbage = kv.HEADER.pack(2**31, 0) + b"x" * (kv.MAX_RECORD + 100)
    with pytest.raises(kv.CorruptLog, match="claims"):
        kv.scan(good + garbage, strict=True)
    assert kv.scan(good + garbage, strict=False)[1] == len(good)
    for strict in (True, False):  # a torn last record is a torn tail either way
        assert kv.scan(good * 2 + good[:-3], strict=strict)[1] == 2 * len(good)

    refused = 0
    for seed in range(30):
        data, ops = power_cut_image(seed, fsync=False)
        records, _ = kv.scan(data, strict=False)
        assert records == ops[: len(records)], seed  # a prefix, never an exception
        try:
            kv.scan(data, strict=True)
        except kv.CorruptLog:
            refused += 1  # what the old scan (always strict) did after an ordinary power cut
        data, ops = power_cut_image(seed, fsync=True)  # the control: one unsynced record
        assert kv.scan(data, strict=True)[0] == ops, seed
    assert refused > 0


def test_kv_store_lab_starts_after_a_lost_page_without_fsync_and_refuses_with_it(tmp_path):
    """A value spanning 4 KiB pages whose middle page was lost (reads as zeros), valid
    records after it: the default store recovers what precedes it and truncates there;
    the --fsync store, where that cannot be a crash, refuses to start."""
    before = kv.encode({"op": "put", "key": "a", "value": "1"})
    big = bytearray(kv.encode({"op": "put", "key": "big", "value": "v" * 10_000}))
    big[4096:8192] = bytes(4096)  # the lost page
    after = kv.encode({"op": "put", "key": "b", "value": "2"})
    for fsync in (False, True):
        directory = tmp_path / f"fsync-{fsync}"
        directory.mkdir()
        (directory / kv.LOG_NAME).write_bytes(before + bytes(big) + after)
        if fsync:
            with pytest.raises(kv.CorruptLog):
                kv.Store(directory, fsync=True)
            continue
        store = kv.Store(directory)
        assert store.data == {"a": "1"}
        store.close()
        assert (directory / kv.LOG_NAME).stat().st_size == len(before)


def test_kv_store_lab_without_the_size_check_loses_the_record_on_restart(tmp_path):
    """The lab page's "Break it": without encode()'s TooLarge check, stage 3's escaping
    test fails — the over-limit record is acknowledged, then cut off at the restart (and in
    --fsync mode the store refuses to start instead)."""
    source = Path("labs/kv-store/solution.py").read_text(encoding="utf-8")
    check = "    if len(payload) > MAX_RECORD:\n        raise TooLarge"
    assert check in source
    variant = tmp_path / "no_size_check.py"
    variant.write_text(source.replace(check, "    if False:\n        raise TooLarge"))
    run = subprocess.run(
        [sys.executable, "labs/run.py", "kv-store", "--file", str(variant), "--seed", "1"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert "Stage 3 of 6 failed (2 passed)" in run.stdout, run.stdout + run.stderr
    assert "FAIL  Values with quotes" in run.stdout and "got 'NOT_FOUND'" in run.stdout

    spec = importlib.util.spec_from_file_location("kv_no_size_check", variant)
    unchecked = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(unchecked)
    for fsync in (False, True):
        directory = tmp_path / f"data-{fsync}"
        store = unchecked.Store(directory, fsync=fsync)
        store.put("quotes", '"' * 60_000)  # 120,000 bytes once JSON-escaped
        store.put("after", "v")
        store.close()
        if fsync:
            with pytest.raises(unchecked.CorruptLog, match="claims"):
                unchecked.Store(directory, fsync=True)
        else:
            assert unchecked.Store(directory).data == {}  # both acknowledged puts gone


def test_without_the_truncate_the_next_record_lands_behind_garbage(tmp_path):
    """The page's "Break it": skip recover()'s truncate, append, and recover again."""
    good = [wal_log.encode({"op": "put", "key": f"k{i}", "value": "v"}) for i in range(3)]
    torn = wal_log.encode({"op": "put", "key": "torn", "value": "v"})[:-3]
    after = wal_log.encode({"op": "put", "key": "after", "value": "v"})
    log = tmp_path / "wal.log"
    log.write_bytes(b"".join(good) + torn)
    wal_log.recover(log)  # the control: truncates, so the append follows valid records
    with log.open("ab") as f:
        f.write(after)
    assert "after" in wal_log.recover(log)[0]
    log.write_bytes(b"".join(good) + torn + after)  # as if the truncate had been skipped
    try:
        state, _ = wal_log.recover(log)
    except wal_log.CorruptLogError:
        return  # refused: the acknowledged record is unreachable either way
    assert "after" not in state


def test_acknowledging_a_group_before_its_fsync_loses_acknowledged_writes():
    """The page's "Break it": the records still pending at a power cut were never synced,
    so acknowledging them on entry to the batch would have promised writes that are lost."""
    lost = 0
    for crash_at in range(101, 400, 7):
        disk, acked = wal_power_loss.run_until_crash("group commit", crash_at)
        pending = [f"k{i}" for i in range(len(acked), crash_at)]
        survived = wal_power_loss.recovered_keys(disk.after_power_loss())
        assert set(acked) <= survived  # the control: acknowledged after the fsync, kept
        lost += sum(key not in survived for key in pending)
    assert lost > 0
