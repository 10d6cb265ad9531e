"""The partitioned-log lab, stage by stage (docs/messaging/lab-partitioned-log.md).

The learner's file is imported (`lab_module`) and its PartitionedLog is driven through its
API in a temp dir: appends and reads, keys and partitions, a reopen without close (as after
a killed process), a torn tail, consumer-group offsets, and bad input.

Run: make lab LAB=partitioned-log FILE=path/to/your_log.py
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

import pytest

PAGE = "docs/messaging/lab-partitioned-log.md"
STAGES = {
    1: "append and read by offset",
    2: "topics with partitions chosen by key, per-key order",
    3: "durable across a restart, torn tail cut off",
    4: "consumer groups with committed offsets",
    5: "bad input: oversized record, unknown topic, offset out of range, corrupt record",
}


def values(records) -> list[bytes]:  # noqa: ANN001
    return [r.value for r in records]


@pytest.fixture
def log(lab_module, tmp_path):
    opened = lab_module.PartitionedLog(tmp_path / "data")
    yield opened
    with contextlib.suppress(Exception):  # a half-built log may fail to close; the test said why
        opened.close()


def reopen(lab_module, tmp_path):  # noqa: ANN001, ANN201
    """A second instance on the same directory, the first never closed: as after SIGKILL."""
    return lab_module.PartitionedLog(tmp_path / "data")


# --- stage 1 ---------------------------------------------------------------------------


@pytest.mark.stage(1)
def test_offsets_start_at_zero_and_count_up(log):
    """append returns (partition, offset): 0, 1, 2 … on a one-partition topic"""
    log.create_topic("events", 1)
    got = [log.append("events", b"k", f"v{i}".encode()) for i in range(5)]
    assert got == [(0, i) for i in range(5)], (
        f"appended 5 records: expected (0, 0)…(0, 4), got {got}"
    )
    assert log.end_offset("events", 0) == 5, "end_offset after 5 appends should be 5"


@pytest.mark.stage(1)
def test_read_from_any_offset_returns_the_records_in_order(log):
    """read(topic, partition, offset, max_records) returns records from that offset"""
    log.create_topic("events", 1)
    for i in range(10):
        log.append("events", b"k", f"v{i}".encode())
    assert values(log.read("events", 0, 0)) == [f"v{i}".encode() for i in range(10)]
    got = log.read("events", 0, 7, max_records=2)
    assert [(r.offset, r.value) for r in got] == [(7, b"v7"), (8, b"v8")], got
    assert log.read("events", 0, 10) == [], "reading at the end offset returns []"
    again = values(log.read("events", 0, 0))
    assert len(again) == 10, "reading does not consume: a second read from 0 gets all 10"


# --- stage 2 ---------------------------------------------------------------------------


@pytest.mark.stage(2)
def test_the_same_key_always_goes_to_the_same_partition(log, rng):
    """records with one key land in one partition, in the order they were appended"""
    log.create_topic("orders", 4)
    assert log.partitions("orders") == 4
    keys = [f"customer-{rng.randrange(10**6)}".encode() for _ in range(37)]
    placed: dict[bytes, set[int]] = {}
    for n, key in enumerate(keys * 3):
        partition, _ = log.append("orders", key, str(n).encode())
        placed.setdefault(key, set()).add(partition)
    split = {k: p for k, p in placed.items() if len(p) > 1}
    assert not split, f"a key went to several partitions: {split}"
    used = {p for ps in placed.values() for p in ps}
    assert len(used) >= 3, f"37 keys over 4 partitions used only partitions {used}"
    for key, (partition,) in placed.items():
        mine = [int(r.value) for r in log.read("orders", partition, 0, 10_000) if r.key == key]
        assert mine == sorted(mine) and len(mine) == 3, f"key {key!r}: order {mine}"


@pytest.mark.stage(2)
def test_partitions_have_their_own_offsets(log):
    """each partition counts its offsets from 0"""
    log.create_topic("orders", 2)
    seen: dict[int, list[int]] = {0: [], 1: []}
    for n in range(50):
        partition, offset = log.append("orders", f"key-{n}".encode(), b"x")
        seen[partition].append(offset)
    for partition, offsets in seen.items():
        assert offsets == list(range(len(offsets))), f"partition {partition}: {offsets[:10]}…"


# --- stage 3 ---------------------------------------------------------------------------


@pytest.mark.stage(3)
def test_a_reopened_log_has_every_record_and_the_same_partitions(lab_module, log, tmp_path, rng):
    """a new instance on the same directory (the old one never closed) sees every record"""
    log.create_topic("orders", 3)
    appended = {}
    for n in range(60):
        key = f"k{rng.randrange(20)}".encode()
        appended[log.append("orders", key, str(n).encode())] = (key, str(n).encode())
    again = reopen(lab_module, tmp_path)
    try:
        assert again.partitions("orders") == 3
        for (partition, offset), (key, value) in appended.items():
            got = again.read("orders", partition, offset, 1)
            assert got and (got[0].key, got[0].value) == (key, value), (
                f"record {partition}/{offset}: expected {(key, value)}, got {got}"
            )
        key = b"k7"
        before = [p for (p, _), (k, _) in appended.items() if k == key]
        partition, offset = again.append("orders", key, b"after")
        if before:
            assert partition == before[0], "after a restart the same key went elsewhere"
        assert offset == sum(1 for (p, _) in appended if p == partition), "offsets continue"
    finally:
        again.close()


@pytest.mark.stage(3)
def test_another_process_puts_each_key_in_the_same_partition(lab_module, log, tmp_path):
    """a new Python process (another PYTHONHASHSEED) sends each key where this one did"""
    log.create_topic("orders", 3)
    keys = [f"customer-{n}" for n in range(20)]
    here = {key: log.append("orders", key.encode(), b"x")[0] for key in keys}
    log.close()
    script = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.spec_from_file_location('learner', sys.argv[1])\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['learner'] = m\n"
        "spec.loader.exec_module(m)\n"
        "log = m.PartitionedLog(sys.argv[2])\n"
        "keys = json.loads(sys.argv[3])\n"
        "print(json.dumps({k: log.append('orders', k.encode(), b'y')[0] for k in keys}))\n"
        "log.close()\n"
    )
    args = [sys.executable, "-c", script, lab_module.__file__, str(tmp_path / "data")]
    run = subprocess.run([*args, json.dumps(keys)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, f"reopening the log in a new process failed:\n{run.stderr}"
    there = json.loads(run.stdout.strip().splitlines()[-1])
    moved = {k: (here[k], there[k]) for k in keys if here[k] != there[k]}
    assert not moved, f"keys went to another partition in a new process (here, there): {moved}"


@pytest.mark.stage(3)
def test_a_torn_last_record_is_cut_off_and_appends_continue(lab_module, tmp_path):
    """half a record, or a short header, at the end of a file is dropped on open"""
    for case, left in enumerate(["half its bytes", "3 bytes of its 8-byte header"]):
        directory = tmp_path / f"case{case}"
        log = lab_module.PartitionedLog(directory)
        log.create_topic("t", 1)
        for n in range(5):
            log.append("t", b"k", f"value-{n}".encode())
        path = directory / "t" / "0.log"
        assert path.exists(), "partition 0 of topic t must be stored in <dir>/t/0.log"
        whole = len(path.read_bytes())
        log.append("t", b"k", b"the torn one")
        keep = (len(path.read_bytes()) - whole) // 2 if case == 0 else 3
        path.write_bytes(path.read_bytes()[: whole + keep])  # the process died mid-write
        again = lab_module.PartitionedLog(directory)  # the first one never closed
        try:
            assert values(again.read("t", 0, 0)) == [f"value-{n}".encode() for n in range(5)], (
                f"the last record cut to {left}: expected the 5 whole records"
            )
            assert again.append("t", b"k", b"next") == (0, 5), "the next append takes offset 5"
        finally:
            again.close()
        third = lab_module.PartitionedLog(directory)
        try:
            assert values(third.read("t", 0, 5)) == [b"next"], "the record after the cut survives"
        finally:
            third.close()
        with contextlib.suppress(Exception):
            log.close()


# --- stage 4 ---------------------------------------------------------------------------


@pytest.mark.stage(4)
def test_committed_offsets_are_per_group_and_partition(log):
    """commit(group, topic, partition, offset); committed() is 0 before any commit"""
    log.create_topic("orders", 2)
    for n in range(10):
        log.append("orders", f"k{n}".encode(), b"x")
    assert log.committed("billing", "orders", 0) == 0
    log.commit("billing", "orders", 0, log.end_offset("orders", 0))
    log.commit("audit", "orders", 0, 1)
    assert log.committed("billing", "orders", 0) == log.end_offset("orders", 0)
    assert log.committed("audit", "orders", 0) == 1, "groups keep separate offsets"
    assert log.committed("billing", "orders", 1) == 0, "partitions keep separate offsets"


@pytest.mark.stage(4)
def test_a_consumer_killed_mid_stream_resumes_from_its_last_commit(lab_module, log, tmp_path, rng):
    """after a crash, a consumer restarts at the committed offset: nothing lost, duplicates
    only since the last commit"""
    log.create_topic("orders", 1)
    for n in range(100):
        log.append("orders", b"k", str(n).encode())
    processed: list[int] = []
    offset, crash_at, crashed = 0, rng.randrange(20, 90), False
    while not crashed:  # consume in batches of 10, commit after each whole batch
        batch = log.read("orders", 0, offset, 10)
        for record in batch:
            processed.append(int(record.value))
            if record.offset == crash_at:
                crashed = True  # killed after processing it, before the next commit
                break
        else:
            offset += len(batch)
            log.commit("workers", "orders", 0, offset)
    again = reopen(lab_module, tmp_path)  # the consumer's process died; a new one starts
    try:
        offset = again.committed("workers", "orders", 0)
        while offset < again.end_offset("orders", 0):
            batch = again.read("orders", 0, offset, 10)
            processed.extend(int(r.value) for r in batch)
            offset += len(batch)
            again.commit("workers", "orders", 0, offset)
        assert sorted(set(processed)) == list(range(100)), "every record processed at least once"
        duplicates = len(processed) - 100
        assert duplicates == crash_at % 10 + 1, (
            f"crashed at offset {crash_at}: expected {crash_at % 10 + 1} reprocessed since "
            f"the last commit, got {duplicates}"
        )
    finally:
        again.close()


# --- stage 5 ---------------------------------------------------------------------------


@pytest.mark.stage(5)
def test_an_oversized_record_is_refused_and_nothing_is_written(lab_module, log, tmp_path):
    """a record over MAX_RECORD raises RecordTooLarge and is not written; one at it is kept

    The end offset does not move, in this instance or in one reopened on the same files."""
    log.create_topic("t", 1)
    log.append("t", b"k", b"ok")
    with pytest.raises(lab_module.RecordTooLarge):
        log.append("t", b"k", b"x" * (lab_module.MAX_RECORD + 1))
    assert log.end_offset("t", 0) == 1, "a refused record must not take an offset"
    log.append("t", b"k", b"x" * (lab_module.MAX_RECORD - 1))  # at the limit: accepted
    again = reopen(lab_module, tmp_path)
    try:
        got = [len(r.value) for r in again.read("t", 0, 0)]
        assert got == [2, lab_module.MAX_RECORD - 1], (
            f"reopened: expected the 2 accepted records (value lengths 2 and MAX_RECORD - 1), "
            f"got value lengths {got}: was the refused record written to the file?"
        )
    finally:
        again.close()


@pytest.mark.stage(5)
def test_unknown_topics_and_offsets_out_of_range_raise_their_errors(lab_module, log):
    """UnknownTopic for a topic never created; OffsetOutOfRange past the end or below 0"""
    log.create_topic("t", 2)
    log.append("t", b"k", b"v")
    for call in (
        lambda: log.append("nope", b"k", b"v"),
        lambda: log.read("nope", 0, 0),
        lambda: log.end_offset("nope", 0),
    ):
        with pytest.raises(lab_module.UnknownTopic):
            call()
    for call in (
        lambda: log.read("t", 0, 99),
        lambda: log.read("t", 0, -1),
        lambda: log.read("t", 7, 0),
        lambda: log.commit("g", "t", 0, 99),
    ):
        with pytest.raises(lab_module.OffsetOutOfRange):
            call()


@pytest.mark.stage(5)
def test_a_corrupt_record_in_the_middle_raises_instead_of_losing_what_follows(lab_module, tmp_path):
    """a flipped byte in an earlier record, or in its length: CorruptLog, file untouched

    A length that runs past the end of the file is not a torn write when no record of this
    log is that long: a torn write leaves a whole header or a short one, not a wrong one."""
    for case, where in enumerate(["a byte of its value", "the top byte of its length"]):
        directory = tmp_path / f"case{case}"
        log = lab_module.PartitionedLog(directory)
        log.create_topic("t", 1)
        for n in range(10):
            log.append("t", b"k", b"MARKER-%d-" % n + b"." * 50)
        log.close()
        path = directory / "t" / "0.log"
        data = bytearray(path.read_bytes())
        # ten frames of one size: record 4's frame starts at 4 * size, its length's top byte
        at = data.index(b"MARKER-4-") + 12 if case == 0 else 4 * (len(data) // 10)
        data[at] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(lab_module.CorruptLog):
            lab_module.PartitionedLog(directory).close()
        assert path.read_bytes() == bytes(data), (
            f"record 4 of 10 corrupt in {where}: the file must be left as it was"
        )
