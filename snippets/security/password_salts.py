"""Salts: a table of SHA-256 hashes computed in advance cracks every unsalted stored
password that is on its list and none of the salted ones; an attacker who reads each
salt and runs the list once per user cracks them all again, at users x list hashes
instead of list hashes. The salt multiplies the work; it does not stop the guessing.

Run: python snippets/security/password_salts.py
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
from collections import Counter

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


def table_attack(rows: dict[str, tuple[bytes, bytes]]) -> tuple[int, int]:
    """Hash the list ONCE, before seeing any database, then look every row up.
    Returns (users cracked, hashes computed)."""
    table = {hashlib.sha256(p.encode()).digest(): p for p in common_passwords()}
    return sum(digest in table for _, digest in rows.values()), len(common_passwords())


def per_salt_attack(rows: dict[str, tuple[bytes, bytes]]) -> tuple[int, int]:
    """After the theft: read each user's salt and hash the whole list with it.
    Returns (users cracked, hashes computed)."""
    candidates = [p.encode() for p in common_passwords()]
    cracked = computed = 0
    for salt, digest in rows.values():
        hashes = {hashlib.sha256(salt + p).digest() for p in candidates}
        computed += len(candidates)
        cracked += digest in hashes
    return cracked, computed


def shared_hashes(rows: dict[str, tuple[bytes, bytes]]) -> int:
    """How many users have a stored hash that another user also has."""
    counts = Counter(digest for _, digest in rows.values())
    return sum(n for n in counts.values() if n > 1)


# --8<-- [end:table]


def main() -> None:
    passwords = users()
    common = sum(p in set(common_passwords()) for p in passwords.values())
    print(f"{len(passwords)} users, {common} with a password from the 5,000-entry list")
    print("  stored as         attack                      cracked  hashes computed"
          "  users sharing a hash")  # fmt: skip
    for salted in (False, True):
        rows = store(passwords, salted)
        label = "salted sha256" if salted else "unsalted sha256"
        attacks = {"table built in advance": table_attack}
        if salted:
            attacks["the list, once per salt"] = per_salt_attack
        for name, attack in attacks.items():
            cracked, computed = attack(rows)
            print(f"  {label:16}  {name:26} {cracked:7}  {computed:15,}"
                  f"  {shared_hashes(rows):20}")  # fmt: skip


if __name__ == "__main__":
    main()
