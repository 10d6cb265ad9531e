"""Two app processes share one Redis cache: the second finds what the first loaded, so the
origin is asked once per key instead of once per key per process.

Run: python snippets/servers/cache_redis.py
Needs: REDIS_URL
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import uuid
from multiprocessing.sharedctypes import Synchronized

import redis

REQUESTS = ["user:1", "user:2", "user:1", "user:3", "user:2", "user:1"]  # per process


def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        sys.exit(
            "set REDIS_URL to a Redis server, e.g. redis://127.0.0.1:6379/0,"
            " or run `make run S=servers/cache_redis`, which starts one"
        )
    return url


def load_user(key: str, origin_calls: Synchronized) -> dict[str, str]:
    """The origin: a slow database query, counted across every process."""
    with origin_calls.get_lock():
        origin_calls.value += 1
    return {"id": key, "name": f"name of {key}"}


# --8<-- [start:app]
def app_with_local_cache(origin_calls: Synchronized) -> None:
    """Each process has its own dict: nothing it loads helps the other process."""
    local: dict[str, dict[str, str]] = {}
    for key in REQUESTS:
        if key not in local:
            local[key] = load_user(key, origin_calls)


def app_with_redis(url: str, prefix: str, origin_calls: Synchronized) -> None:
    """Cache-aside in Redis: GET, on a miss load and SET with a TTL (EX seconds)."""
    with redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5) as r:
        for key in REQUESTS:
            cached = r.get(prefix + key)
            if cached is None:
                user = load_user(key, origin_calls)
                r.set(prefix + key, json.dumps(user), ex=60)  # expires by itself


# --8<-- [end:app]


# --8<-- [start:run]
def origin_calls_with(
    target: object, *args: object, processes: int = 2, timeout: float = 10.0
) -> int:
    """Run the app in `processes` separate processes, one after the other."""
    fork = multiprocessing.get_context("fork")
    calls = fork.Value("i", 0)
    for _ in range(processes):
        worker = fork.Process(target=target, args=(*args, calls))
        worker.start()
        worker.join(timeout)
        if worker.is_alive():  # stuck (a Redis that does not answer?): stop it, then say so
            worker.terminate()
            worker.join(5)
            if worker.is_alive():
                worker.kill()
                worker.join()
            raise RuntimeError(f"app process did not finish within {timeout} s")
        if worker.exitcode != 0:
            raise RuntimeError(f"app process exited with {worker.exitcode}")
    return calls.value


# --8<-- [end:run]


def main() -> None:
    url = redis_url()
    prefix = f"cache-demo:{uuid.uuid4().hex}:"  # our own keys on a possibly shared server
    try:
        local = origin_calls_with(app_with_local_cache)
        shared = origin_calls_with(app_with_redis, url, prefix)
        with redis.Redis.from_url(url, socket_timeout=5) as r:
            ttl = r.ttl(prefix + "user:1")
        print(f"2 processes x {len(REQUESTS)} requests for {len(set(REQUESTS))} users")
        print(f"  a cache per process:  {local} origin calls")
        print(f"  one shared Redis:     {shared} origin calls")
        print(f"  Redis expires user:1 in ~{ttl} s (SET ... EX 60)")
    finally:
        with redis.Redis.from_url(url, socket_timeout=5) as r:
            for key in r.scan_iter(prefix + "*"):
                r.delete(key)


if __name__ == "__main__":
    main()
