"""Disk I/O (docs/databases/disk-io.md): orderings with generous margins, never times."""

from __future__ import annotations

import os

import pytest

from tests.conftest import load_snippet

disk_reads = load_snippet("databases/disk_reads")
disk_fsync = load_snippet("databases/disk_fsync")

needs_fadvise = pytest.mark.skipif(
    not hasattr(os, "posix_fadvise"), reason="no posix_fadvise: cannot make reads cold"
)


@pytest.fixture(scope="module")
def reads(tmp_path_factory):
    path = tmp_path_factory.mktemp("disk") / "data.bin"
    disk_reads.make_file(path, size=32 * 1024 * 1024)
    return disk_reads.measure(path, pages=1000, rounds=3)


@needs_fadvise
def test_cold_random_reads_are_slower_than_cold_sequential_reads(reads):
    assert reads["random, cold"] > 3 * reads["sequential, cold"], reads


@needs_fadvise
def test_the_page_cache_makes_random_reads_fast_once_warm(reads):
    assert reads["random, cold"] > 3 * reads["random, warm"], reads


def test_a_short_read_past_the_end_of_the_file_is_an_error(tmp_path):
    path = tmp_path / "small.bin"
    path.write_bytes(b"x" * 5000)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError, match="short read"):
            disk_reads.read_pages(fd, [4096])
    finally:
        os.close(fd)


def test_fsync_per_write_is_much_slower_than_write_alone(tmp_path):
    result = disk_fsync.compare(tmp_path, n=20, rounds=3)
    assert result["write + fsync"] > 10 * result["write only"], result
    assert result["write + fdatasync"] > 10 * result["write only"], result
