"""Rehashing: argon2id gives the same password a different hash each time (it salts by
itself); check_needs_rehash finds hashes made with an old, lower cost, and a successful
login upgrades them to RFC 9106's parameters — timed, since that one hash is the cost the
page's estimates rest on.

Run: python snippets/security/password_rehash.py
"""

from __future__ import annotations

import time

from argon2 import PasswordHasher, profiles
from argon2.exceptions import VerifyMismatchError

# --8<-- [start:rehash]
# The policy we raise to: RFC 9106 §4's SECOND RECOMMENDED option (t=3, p=4, 64 MiB,
# 16-byte salt, 32-byte tag). The "old" policy stands for hashes stored years ago under a
# lower cost; here it is deliberately cheap (t=1, 8 MiB, p=1).
CURRENT = PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)
OLD = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


def login(database: dict[str, str], user: str, password: str) -> bool:
    """Verify; on success, rehash if the stored hash was made with other parameters.
    A stored value that is not an argon2 hash raises InvalidHashError (a ValueError)."""
    if user not in database:
        return False
    try:
        CURRENT.verify(database[user], password)  # reads the parameters from the hash itself
    except VerifyMismatchError:
        return False
    if CURRENT.check_needs_rehash(database[user]):
        database[user] = CURRENT.hash(password)  # the only moment we have the password
    return True


# --8<-- [end:rehash]


def params(encoded: str) -> str:
    """The m=...,t=...,p=... field of an encoded argon2 hash ($argon2id$v=19$m,t,p$salt$tag)."""
    parts = encoded.split("$")
    if len(parts) != 6 or not parts[1].startswith("argon2"):
        raise ValueError(f"not an encoded argon2 hash: {encoded[:20]!r}")
    return parts[3]


def timed_login(database: dict[str, str], user: str, password: str) -> tuple[bool, float]:
    start = time.perf_counter()
    ok = login(database, user, password)
    return ok, time.perf_counter() - start


def main() -> None:
    a, b = OLD.hash("sunshine7"), OLD.hash("sunshine7")
    print(f"argon2id, the same password twice: equal hashes? {a == b}; both verify: "
          f"{OLD.verify(a, 'sunshine7') and OLD.verify(b, 'sunshine7')}")  # fmt: skip

    secret = "correct horse battery staple"
    database = {"alice": OLD.hash(secret)}
    print(f"\nalice's stored hash, old policy:  {params(database['alice'])}"
          f"  needs rehash: {CURRENT.check_needs_rehash(database['alice'])}")  # fmt: skip
    ok, seconds = timed_login(database, "alice", "wrong")
    print(f"login with a wrong password:      {ok}  stored: {params(database['alice'])}"
          f"  took {seconds:.3f} s")  # fmt: skip
    ok, seconds = timed_login(database, "alice", secret)
    print(f"login with the right password:    {ok}  stored: {params(database['alice'])}"
          f"  took {seconds:.3f} s")  # fmt: skip
    print(f"needs rehash now: {CURRENT.check_needs_rehash(database['alice'])}")


if __name__ == "__main__":
    main()
