"""LSM trees (docs/databases/lsm-trees.md): correctness against a dict under both
compaction policies, the bloom filter's promise, and write vs read amplification against
the B-tree page model at several data set sizes (the trend, never absolute numbers), space
amplification per policy, and what weak bloom filters cost."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import load_snippet

lsm_tree = load_snippet("databases/lsm_tree")

keys = st.binary(min_size=1, max_size=6)
ops = st.lists(st.tuples(keys, st.one_of(st.none(), st.binary(max_size=300))), max_size=120)


def check_shape(tree) -> None:
    """The invariants each policy promises after every write."""
    if tree.policy == "leveled":
        assert len(tree.levels[0]) < tree.l0_files
        for level in tree.levels[1:]:  # sorted and non-overlapping: one file per lookup
            assert all(a.largest < b.smallest for a, b in zip(level, level[1:], strict=False))
    else:
        assert len(tree.levels) == 1
        tiers = [t.tier for t in tree.levels[0]]
        assert tiers == sorted(tiers, reverse=True)  # oldest (biggest) first
        assert all(tiers.count(t) < tree.fanout for t in tiers)


@settings(max_examples=60, deadline=None)
@given(
    ops=ops,
    probes=st.lists(keys, max_size=10),
    use_bloom=st.booleans(),
    policy=st.sampled_from(["leveled", "tiered"]),
)
def test_lsm_tree_behaves_like_a_dict_through_flushes_and_compactions(
    ops, probes, use_bloom, policy
):
    model: dict[bytes, bytes] = {}
    tree = lsm_tree.LSMTree(
        memtable_limit=3, policy=policy, fanout=2, l0_files=2, use_bloom=use_bloom
    )
    for key, value in ops:
        if value is None:
            tree.delete(key)  # a tombstone must hide older SSTables' values
            model.pop(key, None)
        else:
            tree.put(key, value)
            model[key] = value
        check_shape(tree)
    for key in [*model, *probes, *(k for k, _ in ops)]:
        assert tree.get(key) == model.get(key)


class DropsTombstonesEverywhere(lsm_tree.LSMTree):
    """The page's "Break it": a merge that drops tombstones even above the bottom."""

    def _merge(self, tables, bottom):
        return super()._merge(tables, bottom=True)


@pytest.mark.parametrize("policy", ["leveled", "tiered"])
def test_dropping_tombstones_above_the_bottom_brings_deleted_keys_back(policy):
    def deleted_keys_seen(cls) -> int:
        tree = cls(memtable_limit=4, policy=policy, fanout=2, l0_files=2)
        for i in range(200):
            tree.put(b"k%03d" % i, b"v")
        for i in range(0, 200, 2):
            tree.delete(b"k%03d" % i)
        for i in range(200, 260):  # more writes: merges above the bottom level
            tree.put(b"k%03d" % i, b"v")
        return sum(tree.get(b"k%03d" % i) is not None for i in range(0, 200, 2))

    assert deleted_keys_seen(lsm_tree.LSMTree) == 0
    assert deleted_keys_seen(DropsTombstonesEverywhere) > 0


def test_bloom_filter_has_no_false_negatives_and_few_false_positives():
    def false_positives(bits_per_key: int) -> int:
        bloom = lsm_tree.BloomFilter(keys=2000, bits_per_key=bits_per_key)
        members = [f"key{i}".encode() for i in range(2000)]
        for key in members:
            bloom.add(key)
        assert all(bloom.might_contain(key) for key in members)
        return sum(bloom.might_contain(f"other{i}".encode()) for i in range(5000))

    assert false_positives(10) < 5000 * 0.03  # ~1% expected at 10 bits per key
    assert false_positives(2) > 5000 * 0.25  # the page's "Break it": ~40% at 2 bits per key


def test_a_corrupt_page_is_reported_not_misread():
    page = lsm_tree.encode(b"key", b"value")[:-2]  # the value runs past the end
    with pytest.raises(ValueError, match="corrupt page"):
        lsm_tree.decode_page(page)


@pytest.fixture(scope="module")
def measured():
    return {
        (n, store): lsm_tree.measure(n, store, probes=200)
        for n in lsm_tree.SIZES
        for store in lsm_tree.STORES
    }


def wa(measured, store):
    return [measured[n, store]["write amplification"] for n in lsm_tree.SIZES]


def test_leveled_write_amplification_grows_with_the_data_set_and_crosses_the_btree(measured):
    leveled, tiered, btree = wa(measured, "leveled"), wa(measured, "tiered"), wa(measured, "btree")
    assert leveled == sorted(leveled) and leveled[-1] > 2 * leveled[0]  # a level per 10x data
    assert tiered == sorted(tiered) and tiered[-1] > tiered[0]
    assert max(btree) < 1.05 * min(btree)  # page / record: flat in the data set size
    assert leveled[0] < btree[0] and leveled[-1] > btree[-1]  # "sometimes" lower (DDIA ch. 3)
    assert all(t < lv for t, lv in zip(tiered, leveled, strict=True))  # tiered writes less...


def test_tiered_compaction_pays_in_sorted_runs_and_reads(measured):
    n = lsm_tree.SIZES[-1]
    leveled, tiered = measured[n, "leveled"], measured[n, "tiered"]
    assert tiered["sorted runs"] > 1.5 * leveled["sorted runs"]  # ...and keeps more runs
    off = "pages per lookup (absent, bloom off)"
    assert tiered[off] > 1.5 * leveled[off]


def test_without_bloom_filters_an_lsm_lookup_reads_more_pages_than_the_btree(measured):
    n = lsm_tree.SIZES[-1]
    btree = measured[n, "btree"]
    for store in ["leveled", "tiered"]:
        r = measured[n, store]
        assert (
            r["pages per lookup (absent, bloom off)"]
            > 2 * btree["pages per lookup (absent, bloom on)"]
        )
        assert (
            r["pages per lookup (present, bloom off)"]
            > 1.5 * r["pages per lookup (present, bloom on)"]
        )
        # bloom filters skip almost every SSTable that cannot hold the key
        assert r["pages per lookup (absent, bloom on)"] < 0.2
        assert r["pages per lookup (present, bloom on)"] < 1.2
    assert btree["pages per lookup (present, bloom on)"] == 1


def test_without_compaction_writes_are_cheapest_and_reads_dearest(measured):
    """The page's "Break it": l0_files too high for compaction ever to run."""
    n = lsm_tree.SIZES[-1]
    never = lsm_tree.measure(n, "leveled", probes=200, l0_files=10**6)
    assert never["write amplification"] < 2.5 < measured[n, "tiered"]["write amplification"]
    assert never["sorted runs"] > 100
    assert (
        never["pages per lookup (absent, bloom off)"]
        > 10 * measured[n, "leveled"]["pages per lookup (absent, bloom off)"]
    )


def test_tiered_keeps_more_stale_copies_than_leveled_at_every_size(measured):
    """Space amplification, counted: the records in the SSTables (and the log) per byte of
    live records. Page padding is reported apart: it is the model's 1 KiB pages."""
    for n in lsm_tree.SIZES:
        leveled, tiered, btree = (measured[n, s] for s in ("leveled", "tiered", "btree"))
        records = "space amplification (records)"
        assert tiered[records] > leveled[records] + 0.1, n  # several copies of some keys
        assert leveled[records] < 1.3, n  # compaction keeps leveled close to one copy
        assert btree[records] == 1  # updated in place: one copy of each record
        for r in (leveled, tiered, btree):  # padding only adds
            assert r["space amplification"] >= r[records]


def test_weak_bloom_filters_cost_their_false_positive_rate_per_run_not_a_page(monkeypatch):
    """The page's "Break it": bits_per_key=2. An absent key reads about the false-positive
    rate (0.2-0.4) of a page per sorted run, not one page per run as with no filter."""
    n = lsm_tree.SIZES[-1]
    strong = {s: lsm_tree.measure(n, s, probes=200) for s in ("leveled", "tiered")}
    monkeypatch.setattr(lsm_tree, "BITS_PER_KEY", 2)
    for store in ("leveled", "tiered"):
        weak = lsm_tree.measure(n, store, probes=200)
        absent = weak["pages per lookup (absent, bloom on)"]
        assert 0.1 < absent / weak["sorted runs"] < 0.5, (store, absent)
        assert absent > 5 * strong[store]["pages per lookup (absent, bloom on)"]
        assert absent < 0.5 * weak["pages per lookup (absent, bloom off)"]
