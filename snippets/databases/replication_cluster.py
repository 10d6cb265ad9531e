"""A seeded in-process cluster: replication lag, quorums, a partition and a failover, counted.

Run: python snippets/databases/replication_cluster.py
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field


# --8<-- [start:sim]
class Sim:
    """A deterministic scheduler: events run in time order, delays come from a seeded
    generator, so every run of the same seed is identical. No threads, no sleeps."""

    def __init__(self, seed: int) -> None:
        self.rng, self.now = random.Random(seed), 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def delay(self) -> float:
        """One network hop in ms: usually ~1, sometimes much longer (a slow replica)."""
        return self.rng.expovariate(1.0) + (20.0 if self.rng.random() < 0.1 else 0.0)

    def at(self, delay: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (self.now + delay, next(self._order), action))

    def run(self, until: float = float("inf")) -> None:
        while self._queue and self._queue[0][0] <= until:
            self.now, _, action = heapq.heappop(self._queue)
            action()
        if until != float("inf"):
            self.now = max(self.now, until)


@dataclass
class Replica:
    name: str
    data: dict[str, tuple[int, str]] = field(default_factory=dict)  # key -> (version, value)
    up: bool = True

    def apply(self, key: str, version: int, value: str) -> None:
        if self.up and version > self.data.get(key, (0, ""))[0]:
            self.data[key] = (version, value)

    def read(self, key: str) -> tuple[int, str]:
        return self.data.get(key, (0, ""))


# --8<-- [end:sim]


# --8<-- [start:lag]
def read_your_writes(seed: int = 1, writes: int = 200) -> int:
    """Async leader-follower: the leader acknowledges at once and ships the change to
    followers in the background. The client then reads its own write from a follower.
    Returns how many reads did not see the write the client had just made."""
    sim = Sim(seed)
    leader, followers = Replica("leader"), [Replica("f1"), Replica("f2")]
    stale = 0
    for i in range(writes):
        key, start = f"k{i}", sim.now
        leader.apply(key, 1, "new")
        for f in followers:
            sim.at(sim.delay(), lambda f=f, key=key: f.apply(key, 1, "new"))
        # the ack travels back, then the read travels to a follower: two hops
        follower = sim.rng.choice(followers)
        sim.run(until=start + sim.delay() + sim.delay())
        stale += follower.read(key)[0] < 1
        sim.run(until=sim.now + 5)
    return stale


# --8<-- [end:lag]


# --8<-- [start:quorum]
def quorum_staleness(w: int, r: int, n: int = 3, seed: int = 1, writes: int = 200) -> int:
    """Leaderless replication: a write goes to all n replicas and succeeds after w acks;
    a read asks all n and takes the newest version among the first r answers.
    Returns how many reads, started right after a successful write, missed it."""
    if not (1 <= w <= n and 1 <= r <= n):
        raise ValueError(f"need 1 <= W, R <= N; got W={w}, R={r}, N={n}")
    sim = Sim(seed)
    replicas = [Replica(f"r{i}") for i in range(n)]
    stale = 0
    for i in range(writes):
        key, start = f"k{i}", sim.now
        acks: list[float] = []
        for rep in replicas:
            arrive = sim.delay()
            sim.at(arrive, lambda rep=rep, key=key: rep.apply(key, 1, "new"))
            acks.append(arrive + sim.delay())  # the replica acks after applying
        sim.run(until=start + sorted(acks)[w - 1])  # the w-th ack: the write succeeded
        answers: list[tuple[float, int]] = []  # (when the answer arrives, version)

        def answer(rep: Replica, key: str = key, answers: list = answers) -> None:
            # the replica answers with its state at the moment the request lands
            answers.append((sim.now + sim.delay(), rep.read(key)[0]))

        for rep in replicas:
            sim.at(sim.delay(), lambda rep=rep: answer(rep))
        sim.run(until=sim.now + 1000)
        newest = max(version for _, version in sorted(answers)[:r])
        stale += newest < 1
    return stale


# --8<-- [end:quorum]


# --8<-- [start:partition]
def partition(mode: str, increments: int = 50) -> dict[str, int]:
    """Three replicas split {a} | {b, c}. A client on each side adds 1 to the same counter,
    `increments` times (read, add one, write). "CP": a write needs a majority (2 of 3);
    "AP": any reachable replica accepts it. When the partition heals, the replicas
    converge by last-writer-wins. Returns what was accepted and what survived."""
    a, b, c = Replica("a"), Replica("b"), Replica("c")
    sides = {"minority": [a], "majority": [b, c]}
    accepted = rejected = 0
    clock = itertools.count(1)  # timestamps for last-writer-wins
    for _ in range(increments):
        for reachable in sides.values():
            if mode == "CP" and len(reachable) < 2:
                rejected += 1  # no majority on this side: refuse, stay consistent
                continue
            current = int(reachable[0].read("counter")[1] or 0)
            stamp = next(clock)
            for rep in reachable:
                rep.apply("counter", stamp, str(current + 1))
            accepted += 1
    for source in (a, b, c):  # heal: every replica takes the newest version it hears of
        version, value = source.read("counter")
        for rep in (a, b, c):
            rep.apply("counter", version, value)
    assert a.read("counter") == b.read("counter") == c.read("counter")  # converged
    final = int(a.read("counter")[1] or 0)
    return {
        "accepted": accepted,
        "rejected": rejected,
        "final counter": final,
        "acknowledged increments lost": accepted - final,
    }


# --8<-- [end:partition]


# --8<-- [start:failover]
def failover(acks_needed: int, seed: int = 1, trials: int = 50) -> tuple[int, int]:
    """A leader replicates to two followers and acknowledges after `acks_needed` of them
    have applied the write (0 = asynchronous). It crashes at a random moment; the most
    up-to-date follower is promoted. Returns (acknowledged writes, how many are lost)."""
    sim = Sim(seed)
    total_acked = lost = 0
    for _ in range(trials):
        leader, followers = Replica("leader"), [Replica("f1"), Replica("f2")]
        stream_end = {f.name: sim.now for f in followers}  # replication streams are FIFO
        acked: list[str] = []
        crash_at = sim.now + sim.rng.uniform(20, 60)
        i = 0
        while sim.now < crash_at:
            key, start = f"k{i}", sim.now
            leader.apply(key, 1, "v")
            arrivals = []
            for f in followers:
                stream_end[f.name] = max(stream_end[f.name], start + sim.delay())
                arrive = stream_end[f.name] - start  # never before the previous change
                sim.at(arrive, lambda f=f, key=key: f.apply(key, 1, "v"))
                arrivals.append(arrive + sim.delay())
            ack_at = start + (sorted(arrivals)[acks_needed - 1] if acks_needed else 0.0)
            if ack_at > crash_at:
                break  # the leader dies before it can acknowledge this write
            sim.run(until=ack_at)
            acked.append(key)
            sim.run(until=sim.now + 1.0)  # the client's next write, 1 ms later
            i += 1
        sim.run(until=crash_at)
        leader.up = False  # crash: whatever it had not shipped is gone with it
        for f in followers:
            f.up = False  # the in-flight replication messages die with the leader's link
        new_leader = max(followers, key=lambda f: len(f.data))
        lost += sum(1 for key in acked if key not in new_leader.data)
        total_acked += len(acked)
        sim.run()  # drain stale events (they hit replicas that no longer accept them)
    return total_acked, lost


# --8<-- [end:failover]


def main() -> None:
    print(
        f"async replication, read your write from a follower: "
        f"{read_your_writes()} of 200 reads were stale"
    )
    print("quorums on 3 replicas, read right after a successful write:")
    for w, r in [(1, 1), (2, 1), (2, 2), (3, 1), (1, 3)]:
        rule = "R + W > N" if r + w > 3 else "R + W <= N"
        print(f"  W={w} R={r} ({rule:<10}): {quorum_staleness(w, r)} of 200 reads stale")
    print("partition {a} | {b, c}, a client on each side increments one counter 50 times:")
    for mode, label in [("CP", "CP, majority only"), ("AP", "AP, last-writer-wins")]:
        counts = partition(mode)
        print(f"  {label:<20}: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    print("leader crash and failover to the most up-to-date follower, 50 crashes:")
    for needed, name in [(0, "asynchronous"), (1, "semi-synchronous (1 follower)")]:
        acked, lost = failover(needed)
        print(f"  {name:<30}: {acked} writes acknowledged, {lost} lost")


if __name__ == "__main__":
    main()
