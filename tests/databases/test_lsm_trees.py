"""LSM trees (docs/databases/lsm-trees.md): correctness against a dict, the bloom filter's
promise, and write vs read amplification against the B-tree page model."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import load_snippet

lsm_tree = load_snippet("databases/lsm_tree")

keys = st.binary(min_size=1, max_size=6)
ops = st.lists(st.tuples(keys, st.one_of(st.none(), st.binary(max_size=300))), max_size=80)


@settings(max_examples=60, deadline=None)
@given(ops=ops, probes=st.lists(keys, max_size=10), use_bloom=st.booleans())
def test_lsm_tree_behaves_like_a_dict_through_flushes_and_compactions(ops, probes, use_bloom):
    model: dict[bytes, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tree = lsm_tree.LSMTree(Path(tmp), memtable_limit=3, max_tables=2, use_bloom=use_bloom)
        for key, value in ops:
            if value is None:
                tree.delete(key)  # a tombstone must hide older SSTables' values
                model.pop(key, None)
            else:
                tree.put(key, value)
                model[key] = value
        for key in [*model, *probes, *(k for k, _ in ops)]:
            assert tree.get(key) == model.get(key)
        assert len(tree.tables) <= 3


def test_bloom_filter_has_no_false_negatives_and_few_false_positives():
    bloom = lsm_tree.BloomFilter(keys=2000)
    members = [f"key{i}".encode() for i in range(2000)]
    for key in members:
        bloom.add(key)
    assert all(bloom.might_contain(key) for key in members)
    false_positives = sum(bloom.might_contain(f"other{i}".encode()) for i in range(5000))
    assert false_positives < 5000 * 0.03  # ~1% expected at 10 bits per key


def test_a_corrupt_page_is_reported_not_misread():
    page = lsm_tree.encode(b"key", b"value")[:-2]  # the value runs past the end
    with pytest.raises(ValueError, match="corrupt page"):
        lsm_tree.decode_page(page)


@pytest.fixture(scope="module")
def measured():
    return lsm_tree.amplification(use_bloom=True), lsm_tree.amplification(use_bloom=False)


def test_lsm_tree_writes_far_fewer_bytes_than_in_place_page_updates(measured):
    with_bloom, _ = measured
    lsm, btree = with_bloom["lsm write amplification"], with_bloom["btree write amplification"]
    assert lsm > 1 and lsm < 10 and btree > 5 * lsm


def test_without_bloom_filters_an_lsm_lookup_reads_more_pages_than_the_btree(measured):
    with_bloom, without = measured
    assert without["lsm pages per lookup (absent)"] > 2 * without["btree pages per lookup (absent)"]
    assert (
        without["lsm pages per lookup (present)"]
        > 1.5 * with_bloom["lsm pages per lookup (present)"]
    )
    # bloom filters skip almost every SSTable that cannot hold the key
    assert with_bloom["lsm pages per lookup (absent)"] < 0.2
    assert with_bloom["btree pages per lookup (present)"] == 1
