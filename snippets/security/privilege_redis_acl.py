"""Least privilege on Redis 6+ with ACLs: a cache reader may GET keys under cache:, and
Redis answers NOPERM for a write, another key pattern or an admin command — while a user
allowed the same commands (the control) succeeds.

Run: python snippets/security/privilege_redis_acl.py
Needs: REDIS_URL
"""

from __future__ import annotations

import os
import secrets
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import redis


def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        sys.exit(
            "set REDIS_URL to a Redis 7 server as an admin user, or run"
            " `make run S=security/privilege_redis_acl`, which starts one and stops it afterwards"
        )
    return url


def login(url: str, username: str, password: str) -> redis.Redis:
    """A client on REDIS_URL's server, as another user (the URL's own password would win
    over a password= argument in from_url, so the address is taken apart)."""
    address = urlsplit(url)
    return redis.Redis(
        host=address.hostname or "127.0.0.1",
        port=address.port or 6379,
        username=username,
        password=password,
        socket_timeout=5,
        decode_responses=True,
    )


# --8<-- [start:users]
def acl_rules(prefix: str) -> dict[str, list[str]]:
    """Two users, each: on, a password, its keys, its commands (ACL SETUSER syntax)."""
    return {
        "reader": ["resetkeys", f"~{prefix}cache:*", "-@all", "+get", "+mget", "+ping"],
        "writer": ["resetkeys", f"~{prefix}cache:*", "-@all", "+get", "+mget", "+ping", "+set"],
    }


@contextmanager
def acl_users(url: str) -> Iterator[tuple[str, dict[str, redis.Redis]]]:
    """Create this run's users (unique names and keys: ACLs are server-wide) and yield a
    client logged in as each; delete the users and keys afterwards."""
    prefix = f"acl{uuid.uuid4().hex[:8]}:"
    admin = redis.Redis.from_url(url, socket_timeout=5, decode_responses=True)
    password = secrets.token_urlsafe(16)
    names = {role: f"{prefix}{role}" for role in acl_rules(prefix)}
    clients = {}
    try:
        for role, rules in acl_rules(prefix).items():
            admin.execute_command(
                "ACL", "SETUSER", names[role], "reset", "on", f">{password}", *rules
            )
            clients[role] = login(url, names[role], password)
        admin.set(f"{prefix}cache:greeting", "hello")
        admin.set(f"{prefix}session:42", "secret session")
        yield prefix, clients
    finally:
        for client in clients.values():
            client.close()
        admin.delete(f"{prefix}cache:greeting", f"{prefix}session:42")
        admin.execute_command("ACL", "DELUSER", *names.values())
        admin.close()


# --8<-- [end:users]


# --8<-- [start:attempts]
def attempts(prefix: str) -> dict[str, Callable[[redis.Redis], object]]:
    return {
        f"GET {prefix}cache:greeting": lambda r: r.get(f"{prefix}cache:greeting"),
        f"SET {prefix}cache:greeting": lambda r: r.set(f"{prefix}cache:greeting", "hello"),
        f"GET {prefix}session:42": lambda r: r.get(f"{prefix}session:42"),
        "CONFIG GET requirepass": lambda r: r.config_get("requirepass"),
        "FLUSHALL": lambda r: r.execute_command("FLUSHALL"),
    }


def outcome(client: redis.Redis, attempt: Callable[[redis.Redis], object]) -> str:
    try:
        return f"ok: {attempt(client)!r}"
    except redis.exceptions.NoPermissionError as e:  # the server's NOPERM reply
        return f"NOPERM {e}"


# --8<-- [end:attempts]


def main() -> None:
    with acl_users(redis_url()) as (prefix, clients):
        for role, client in clients.items():
            print(f"{role} ({' '.join(acl_rules('')[role][1:])}):")
            for name, attempt in attempts(prefix).items():
                shown = name.replace(prefix, "")
                print(f"  {shown:<24} -> {outcome(client, attempt).replace(prefix, '')}")


if __name__ == "__main__":
    main()
