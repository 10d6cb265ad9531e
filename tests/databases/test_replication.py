"""Replication and consistency (docs/databases/replication.md): counted in a seeded
in-process cluster, so every assertion is about a count, never a time."""

from __future__ import annotations

import pytest

from tests.conftest import load_snippet

replication_cluster = load_snippet("databases/replication_cluster")

SEEDS = [1, 2, 3]


def test_the_simulation_is_deterministic_for_a_seed():
    assert replication_cluster.read_your_writes(seed=5) == replication_cluster.read_your_writes(
        seed=5
    )
    assert replication_cluster.failover(0, seed=5) == replication_cluster.failover(0, seed=5)


@pytest.mark.parametrize("seed", SEEDS)
def test_async_replication_lag_breaks_read_your_writes(seed):
    assert replication_cluster.read_your_writes(seed=seed) > 10


@pytest.mark.parametrize("seed", SEEDS)
def test_overlapping_quorums_never_miss_a_completed_write(seed):
    for w in range(1, 4):
        for r in range(1, 4):
            stale = replication_cluster.quorum_staleness(w, r, seed=seed, writes=100)
            if r + w > 3:
                assert stale == 0, (w, r, seed)
    assert replication_cluster.quorum_staleness(1, 1, seed=seed, writes=100) > 5


def test_quorum_sizes_outside_1_to_n_are_rejected():
    with pytest.raises(ValueError, match="W=4"):
        replication_cluster.quorum_staleness(4, 1)
    with pytest.raises(ValueError, match="R=0"):
        replication_cluster.quorum_staleness(2, 0)


def test_a_partition_forces_a_choice_between_availability_and_consistency():
    cp = replication_cluster.partition("CP")
    assert cp["rejected"] == 50 and cp["acknowledged increments lost"] == 0
    ap = replication_cluster.partition("AP")
    assert ap["rejected"] == 0 and ap["accepted"] == 100
    assert ap["acknowledged increments lost"] == 50  # last-writer-wins dropped one side


@pytest.mark.parametrize("seed", SEEDS)
def test_failover_with_async_replication_loses_acknowledged_writes(seed):
    acked, lost = replication_cluster.failover(0, seed=seed, trials=20)
    assert acked > 0 and lost > 0
    acked, lost = replication_cluster.failover(1, seed=seed, trials=20)
    assert acked > 0 and lost == 0  # every ack waited for a follower that has it
