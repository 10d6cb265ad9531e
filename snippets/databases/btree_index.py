"""A B-tree from scratch: a lookup reads a few nodes where a scan reads every page.

Run: python snippets/databases/btree_index.py
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


# --8<-- [start:btree]
@dataclass
class Node:
    keys: list[Any] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)  # empty for a leaf

    @property
    def leaf(self) -> bool:
        return not self.children


class BTree:
    """A B-tree of minimum degree t: every node but the root holds t-1 .. 2t-1 keys,
    all leaves are at the same depth, so a lookup visits height+1 nodes (pages)."""

    def __init__(self, t: int = 32) -> None:
        if t < 2:
            raise ValueError("minimum degree must be at least 2")
        self.t, self.root, self.nodes_read = t, Node(), 0

    def search(self, key: Any) -> Any | None:
        node = self.root
        while True:
            self.nodes_read += 1  # one page read per level
            i = bisect_left(node.keys, key)
            if i < len(node.keys) and node.keys[i] == key:
                return node.values[i]
            if node.leaf:
                return None
            node = node.children[i]

    def insert(self, key: Any, value: Any) -> None:
        """Insert or overwrite. Full nodes are split on the way down, so the parent of
        a split always has room; the tree grows taller only by splitting the root."""
        if len(self.root.keys) == 2 * self.t - 1:
            self.root = Node(children=[self.root])
            self._split_child(self.root, 0)
        node = self.root
        while True:
            i = bisect_left(node.keys, key)
            if i < len(node.keys) and node.keys[i] == key:
                node.values[i] = value
                return
            if node.leaf:
                node.keys.insert(i, key)
                node.values.insert(i, value)
                return
            if len(node.children[i].keys) == 2 * self.t - 1:
                self._split_child(node, i)
                if key == node.keys[i]:
                    node.values[i] = value
                    return
                if key > node.keys[i]:
                    i += 1
            node = node.children[i]

    def _split_child(self, parent: Node, i: int) -> None:
        """Move the median key of the full child i up into parent; halve the child."""
        t, full = self.t, parent.children[i]
        right = Node(full.keys[t:], full.values[t:], full.children[t:])
        parent.keys.insert(i, full.keys[t - 1])
        parent.values.insert(i, full.values[t - 1])
        parent.children.insert(i + 1, right)
        full.keys, full.values, full.children = (
            full.keys[: t - 1],
            full.values[: t - 1],
            full.children[:t],
        )

    def range(self, lo: Any, hi: Any) -> Iterator[tuple[Any, Any]]:
        """Every (key, value) with lo <= key < hi, in order, visiting only overlapping nodes."""
        yield from self._range(self.root, lo, hi)

    def _range(self, node: Node, lo: Any, hi: Any) -> Iterator[tuple[Any, Any]]:
        self.nodes_read += 1
        start, stop = bisect_left(node.keys, lo), bisect_right(node.keys, hi)
        for i in range(start, stop + 1 if not node.leaf else stop):
            if not node.leaf:
                yield from self._range(node.children[i], lo, hi)
            if i < stop and node.keys[i] < hi:
                yield node.keys[i], node.values[i]

    def height(self) -> int:
        node, levels = self.root, 0
        while not node.leaf:
            node, levels = node.children[0], levels + 1
        return levels


# --8<-- [end:btree]


# --8<-- [start:compare]
def lookup_cost(
    n: int, lookups: int = 200, seed: int = 1, t: int = 32
) -> tuple[int, float, int, float]:
    """Build a tree of n random keys; per lookup, return (height, nodes read, and the
    pages a sequential scan reads: all of them for `WHERE key = ?`, or on average half
    when it may stop at the first match, as with a UNIQUE key or `LIMIT 1`). A heap page
    holds as many rows as a node holds keys (2t - 1), so pages compare with nodes."""
    rng = random.Random(seed)
    keys = rng.sample(range(n * 10), n)
    tree = BTree(t)
    for key in keys:
        tree.insert(key, f"row {key}")
    per_page = 2 * t - 1
    position = {key: i for i, key in enumerate(keys)}  # where each key sits in the heap
    tree.nodes_read = 0
    until_match = 0
    for key in rng.sample(keys, lookups):
        assert tree.search(key) == f"row {key}"
        until_match += position[key] // per_page + 1  # pages read up to the match
    full_scan = -(-n // per_page)  # every page: another row might match too
    return tree.height(), tree.nodes_read / lookups, full_scan, until_match / lookups


# --8<-- [end:compare]


def main() -> None:
    print("pages per lookup; a page holds 63 rows, as a node holds 63 keys")
    print(f"{'rows':>8}{'height':>8}{'B-tree nodes':>14}{'full scan':>11}{'scan, LIMIT 1':>15}")
    for n in [1_000, 10_000, 100_000]:
        height, nodes, full, until_match = lookup_cost(n)
        print(f"{n:>8}{height:>8}{nodes:>14.1f}{full:>11}{until_match:>15.1f}")
    tree = BTree(t=2)
    for key in [50, 10, 40, 20, 30, 60, 70, 80, 90]:
        tree.insert(key, str(key))
    print(
        f"range [20, 70) in a t=2 tree of height {tree.height()}:",
        [key for key, _ in tree.range(20, 70)],
    )


if __name__ == "__main__":
    main()
