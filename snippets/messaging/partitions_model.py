"""A model of Kafka's partitioned log (not Kafka): keys hashed to partitions keep per-key
order but no global order, and a consumer group that loses a member hands its partitions to
the survivor, which redelivers what came after the last committed offset.

Run: python snippets/messaging/partitions_model.py
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field

PARTITIONS = 4
KEYS = [f"account-{n}" for n in range(8)]
EVENTS = 200
BATCH = 10  # a consumer commits after each batch it has processed


# --8<-- [start:log]
@dataclass
class Topic:
    """N partitions, each an append-only list; a record's offset is its index."""

    partitions: list[list[tuple[str, int]]] = field(
        default_factory=lambda: [[] for _ in range(PARTITIONS)]
    )

    def append(self, key: str, seq: int, by_key: bool = True, rng: random.Random | None = None):
        p = zlib.crc32(key.encode()) % PARTITIONS if by_key else rng.randrange(PARTITIONS)  # type: ignore[union-attr]
        self.partitions[p].append((key, seq))


def consume_all(topic: Topic, rng: random.Random) -> list[tuple[str, int]]:
    """One consumer per partition, each at its own pace: their outputs interleave at random."""
    positions = [0] * PARTITIONS
    seen = []
    while any(positions[p] < len(topic.partitions[p]) for p in range(PARTITIONS)):
        p = rng.choice([p for p in range(PARTITIONS) if positions[p] < len(topic.partitions[p])])
        seen.append(topic.partitions[p][positions[p]])
        positions[p] += 1
    return seen


def out_of_order(seen: list[tuple[str, int]], per_key: bool) -> int:
    """Records that arrive after a record that was produced later (per key, or overall)."""
    last: dict[str, int] = {}
    count = 0
    for key, seq in seen:
        k = key if per_key else ""
        count += seq < last.get(k, -1)
        last[k] = max(seq, last.get(k, -1))
    return count


# --8<-- [end:log]


# --8<-- [start:group]
def rebalance_after_a_crash(
    topic: Topic, crash_after: int, commit_first: bool = False
) -> dict[str, int]:
    """Consumers A and B split the partitions (A: 0, 1; B: 2, 3) and commit once per batch:
    after processing it (at-least-once), or with commit_first before (at-most-once). A dies
    after processing `crash_after` records of a batch. The group gives A's partitions to
    B, which starts at A's committed offsets."""
    committed = [0] * PARTITIONS
    processed: list[tuple[str, int]] = []
    for p in (0, 1):  # A
        records = topic.partitions[p]
        while committed[p] < len(records):
            batch = records[committed[p] : committed[p] + BATCH]
            dies = p == 1 and committed[p] + BATCH > len(records) // 2  # A dies mid-partition
            if commit_first:
                committed[p] += len(batch)
            if dies:
                processed += batch[:crash_after]
                break
            processed += batch
            if not commit_first:
                committed[p] += len(batch)
    for p in range(PARTITIONS):  # B: its own partitions, then A's from A's commits
        processed += topic.partitions[p][committed[p] :]
    total = sum(len(records) for records in topic.partitions)
    return {
        "records": total,
        "processed": len(processed),
        "lost": total - len(set(processed)),
        "processed twice": len(processed) - len(set(processed)),
    }


# --8<-- [end:group]


def main() -> None:
    rng = random.Random(7)
    keys = [rng.choice(KEYS) for _ in range(EVENTS)]  # the same events for both runs
    print(f"{EVENTS} events over {len(KEYS)} keys, {PARTITIONS} partitions, consumed in parallel:")
    for by_key in (True, False):
        topic = Topic()
        for seq, key in enumerate(keys):
            topic.append(key, seq, by_key, rng)
        seen = consume_all(topic, rng)
        label = "partition = hash(key)" if by_key else "partition = random"
        print(
            f"  {label:<22} out of per-key order: {out_of_order(seen, per_key=True):>3}"
            f"   out of global order: {out_of_order(seen, per_key=False):>3}"
        )
    topic = Topic()
    for seq, key in enumerate(keys):
        topic.append(key, seq)
    print(f"consumer group, A dies {BATCH // 2} records into a batch of {BATCH}:")
    print(f"  {'commit':<18} {'records':>7} {'processed':>9} {'lost':>4} {'processed twice':>15}")
    for label, commit_first in (("after processing", False), ("before processing", True)):
        got = rebalance_after_a_crash(topic, BATCH // 2, commit_first)
        print(
            f"  {label:<18} {got['records']:>7} {got['processed']:>9} {got['lost']:>4}"
            f" {got['processed twice']:>15}"
        )


if __name__ == "__main__":
    main()
