"""Salts and rehashing: a table of precomputed SHA-256 hashes cracks every unsalted stored
password that is on its list and none of the salted ones; argon2id gives the same password
a different hash each time; check_needs_rehash finds hashes made with an old, lower cost,
and a login upgrades them to RFC 9106's parameters.

Run: python snippets/security/password_salts_rehash.py
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
from collections import Counter

from argon2 import PasswordHasher, profiles
from argon2.exceptions import VerifyMismatchError

WORDS = ["password", "dragon", "monkey", "letmein", "sunshine",
         "qwerty", "football", "shadow", "master", "princess"]  # fmt: skip


# --8<-- [start:table]
def common_passwords() -> list[str]:
    """A stand-in for a leaked-password list: 10 words x 500 suffixes = 5,000 entries."""
    return [w + (str(n) if n else "") for w in WORDS for n in range(500)]


def users(count: int = 200, seed: int = 7) -> dict[str, str]:
    """3 in 4 users pick from the common list (with repeats), 1 in 4 a random password."""
    rng, common = random.Random(seed), common_passwords()
    return {
        f"user{i}": rng.choice(common) if rng.random() < 0.75 else secrets.token_urlsafe(12)
        for i in range(count)
    }


def store(passwords: dict[str, str], salted: bool) -> dict[str, tuple[bytes, bytes]]:
    """{user: (salt, sha256(salt || password))}: the database an attacker steals."""
    rows = {}
    for user, password in passwords.items():
        salt = os.urandom(16) if salted else b""
        rows[user] = (salt, hashlib.sha256(salt + password.encode()).digest())
    return rows


def table_attack(rows: dict[str, tuple[bytes, bytes]]) -> int:
    """Hash the list ONCE, before seeing any database, then look every row up."""
    table = {hashlib.sha256(p.encode()).digest(): p for p in common_passwords()}
    return sum(digest in table for _, digest in rows.values())


def shared_hashes(rows: dict[str, tuple[bytes, bytes]]) -> int:
    """How many users have a stored hash that another user also has."""
    counts = Counter(digest for _, digest in rows.values())
    return sum(n for n in counts.values() if n > 1)


# --8<-- [end:table]


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


def main() -> None:
    passwords = users()
    common = sum(p in set(common_passwords()) for p in passwords.values())
    print(f"{len(passwords)} users, {common} with a password from the 5,000-entry list")
    for salted in (False, True):
        rows = store(passwords, salted)
        label = "salted sha256" if salted else "unsalted sha256"
        print(f"  {label:16} cracked by the precomputed table: {table_attack(rows):3}"
              f"   users sharing a hash with another user: {shared_hashes(rows)}")  # fmt: skip

    a, b = OLD.hash("sunshine7"), OLD.hash("sunshine7")
    print(f"\nargon2id, the same password twice: equal hashes? {a == b}; both verify: "
          f"{OLD.verify(a, 'sunshine7') and OLD.verify(b, 'sunshine7')}")  # fmt: skip

    secret = "correct horse battery staple"
    database = {"alice": OLD.hash(secret)}
    print(f"\nalice's stored hash, old policy:  {params(database['alice'])}"
          f"  needs rehash: {CURRENT.check_needs_rehash(database['alice'])}")  # fmt: skip
    print(f"login with a wrong password:      {login(database, 'alice', 'wrong')}"
          f"  stored: {params(database['alice'])}")  # fmt: skip
    print(f"login with the right password:    {login(database, 'alice', secret)}"
          f"  stored: {params(database['alice'])}")  # fmt: skip
    print(f"needs rehash now: {CURRENT.check_needs_rehash(database['alice'])}")


if __name__ == "__main__":
    main()
