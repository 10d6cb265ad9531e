"""Indexing (docs/databases/indexing.md): a B-tree checked against a sorted list, and the
plans PostgreSQL really chooses, read from EXPLAIN (ANALYZE, FORMAT JSON)."""

from __future__ import annotations

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import load_snippet

btree_index = load_snippet("databases/btree_index")
index_explain = load_snippet("databases/index_explain")
index_composite = load_snippet("databases/index_composite")


def check_invariants(tree, node, depth: int, leaf_depths: set[int]) -> None:
    assert node.keys == sorted(node.keys)
    if node is not tree.root:
        assert tree.t - 1 <= len(node.keys) <= 2 * tree.t - 1
    if node.leaf:
        leaf_depths.add(depth)
    else:
        assert len(node.children) == len(node.keys) + 1
        for i, child in enumerate(node.children):
            if i > 0:
                assert all(k > node.keys[i - 1] for k in child.keys)
            if i < len(node.keys):
                assert all(k < node.keys[i] for k in child.keys)
            check_invariants(tree, child, depth + 1, leaf_depths)


@settings(max_examples=150, deadline=None)
@given(
    t=st.integers(min_value=2, max_value=4),
    items=st.lists(st.tuples(st.integers(-500, 500), st.integers()), max_size=300),
    lo=st.integers(-600, 600),
    width=st.integers(0, 400),
    probes=st.lists(st.integers(-600, 600), max_size=20),
)
def test_btree_behaves_like_a_sorted_dict(t, items, lo, width, probes):
    tree, model = btree_index.BTree(t=t), {}
    for key, value in items:
        tree.insert(key, value)
        model[key] = value  # insert overwrites, like an upsert
    leaf_depths: set[int] = set()
    check_invariants(tree, tree.root, 0, leaf_depths)
    assert len(leaf_depths) <= 1  # every leaf at the same depth
    for key in [*model, *probes]:
        assert tree.search(key) == model.get(key)
    hi = lo + width
    assert list(tree.range(lo, hi)) == sorted((k, v) for k, v in model.items() if lo <= k < hi)


def test_btree_rejects_a_degree_that_cannot_split():
    with pytest.raises(ValueError, match="at least 2"):
        btree_index.BTree(t=1)


def test_btree_lookups_grow_with_height_while_a_scan_grows_with_rows():
    h_small, nodes_small, full_small, half_small = btree_index.lookup_cost(1_000, lookups=100)
    h_big, nodes_big, full_big, half_big = btree_index.lookup_cost(100_000, lookups=100)
    assert nodes_big <= h_big + 1 and h_big <= h_small + 2  # 100x rows: a level or two more
    assert full_big > 90 * full_small  # a full scan reads ~100x more pages
    assert full_big == -(-100_000 // 63)  # every page: no LIMIT, so no early stop
    assert 0.3 * full_big < half_big < 0.7 * full_big  # stopping at the match: about half
    assert full_big > 100 * nodes_big  # pages against nodes: the same unit


def test_range_scan_visits_only_the_nodes_it_needs():
    tree = btree_index.BTree(t=4)
    for key in range(10_000):
        tree.insert(key, key)
    tree.nodes_read = 0
    assert [k for k, _ in tree.range(5_000, 5_010)] == list(range(5_000, 5_010))
    assert tree.nodes_read <= 3 * (tree.height() + 1)


@pytest.fixture(scope="module")
def orders(database_url):
    """A session holding the snippet's temporary orders table."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        index_explain.create_orders(conn)
        yield conn


@pytest.fixture(scope="module")
def visits(database_url):
    """A session holding the snippet's temporary visits table."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        index_composite.create_visits(conn)
        yield conn


def test_planner_moves_from_index_to_bitmap_to_seq_scan_as_selectivity_grows(orders):
    (few, index), (some, bitmap), (most, seq) = index_explain.scan_by_selectivity(orders)
    assert few < 0.001 < some < 0.05 < 0.5 < most
    assert list(index_explain.node_types(index)) == ["Index Scan"]
    assert index["Index Name"] == "orders_amount"
    assert list(index_explain.node_types(bitmap)) == ["Bitmap Heap Scan", "Bitmap Index Scan"]
    assert list(index_explain.node_types(seq)) == ["Seq Scan"]
    # 2% of the rows, scattered, already touch most of the table's pages
    assert index_explain.pages(index) * 100 < index_explain.pages(bitmap)
    assert index_explain.pages(bitmap) > 0.5 * index_explain.pages(seq)


def test_composite_index_serves_its_leading_column_not_the_second_alone(visits):
    plans = index_composite.column_order(visits)
    both, second_only, leading = plans.values()
    assert list(index_composite.node_types(both)) == ["Index Scan"]
    assert index_composite.pages(second_only) > 10 * index_composite.pages(leading)
    assert leading["Index Name"] == "visits_day_customer"


def test_a_covering_index_answers_without_touching_the_table(visits):
    covered, not_covered = index_composite.covering(visits).values()
    assert covered["Node Type"] == "Index Only Scan" and covered["Heap Fetches"] == 0
    assert "Index Only Scan" not in index_composite.node_types(not_covered)
    assert index_composite.pages(not_covered) > 5 * index_composite.pages(covered)
