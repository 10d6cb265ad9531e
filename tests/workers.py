"""How many pytest-xdist workers `make test` and the flake hunt use: one more than the
machine has cores (python -m tests.workers prints it).

About half of a run's test time is waiting, not computing: labs and behaviour tests wait on
servers, timeouts and the network (their CPU is a fraction of their test time, as
`make test`'s table shows), so with one worker per core the cores sat 45-66% idle. A third
worker on the 2-core machine (the same run, one after the other, `make cpu-map`'s cgroup
accounting, other work on the machine in both): 598 s -> 503 s of wall time, for 794 -> 817
CPU-s. Four workers there cost half as much CPU again (661 -> 1,005 CPU-s) and were no
faster, so it is one more, not twice.
"""

from __future__ import annotations

import os


def default_workers() -> int:
    return (os.cpu_count() or 1) + 1


if __name__ == "__main__":
    print(default_workers())
