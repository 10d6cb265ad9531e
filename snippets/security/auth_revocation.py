"""Server-side sessions vs JWTs: what each stores where, and what logging out costs. A
deleted session is refused at once; a copied JWT still verifies until its exp, unless the
server keeps a denylist of token ids, which brings back a lookup per request.

Run: python snippets/security/auth_revocation.py
"""

from __future__ import annotations

import secrets
import time

import jwt

SECRET = secrets.token_bytes(32)
LIFETIME = 900  # seconds: a 15-minute access token


# --8<-- [start:sessions]
class Sessions:
    """The server keeps the state; the cookie holds only a random, meaningless id."""

    def __init__(self) -> None:
        self.store: dict[str, dict] = {}  # in production: Redis or a database table
        self.lookups = 0

    def login(self, user: str) -> str:
        sid = secrets.token_urlsafe(32)  # 256 bits from the OS CSPRNG
        self.store[sid] = {"user": user, "created": int(time.time())}
        return sid

    def check(self, sid: str) -> str | None:
        self.lookups += 1
        record = self.store.get(sid)
        return record["user"] if record else None

    def logout(self, sid: str) -> None:
        self.store.pop(sid, None)  # revoked for every copy of the cookie, at once


# --8<-- [end:sessions]


# --8<-- [start:tokens]
class Tokens:
    """The token carries the state, signed; the server keeps nothing (or a denylist)."""

    def __init__(self, denylist: bool) -> None:
        self.revoked: set[str] | None = set() if denylist else None
        self.lookups = 0

    def login(self, user: str) -> str:
        now = int(time.time())
        claims = {"sub": user, "iat": now, "exp": now + LIFETIME, "jti": secrets.token_hex(8)}
        return jwt.encode(claims, SECRET, algorithm="HS256")

    def check(self, token: str) -> str | None:
        try:
            claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"require": ["exp"]})
        except jwt.PyJWTError:
            return None
        if self.revoked is not None:
            self.lookups += 1  # the state we hoped to avoid, consulted on every request
            if claims["jti"] in self.revoked:
                return None
        return claims["sub"]

    def logout(self, token: str) -> None:
        if self.revoked is not None:  # without a denylist there is nothing to delete
            self.revoked.add(jwt.decode(token, SECRET, algorithms=["HS256"])["jti"])


# --8<-- [end:tokens]


# --8<-- [start:run]
def run() -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for name, server in [
        ("server-side session", Sessions()),
        ("JWT", Tokens(denylist=False)),
        ("JWT + denylist of jti", Tokens(denylist=True)),
    ]:
        credential = server.login("alice")
        stolen = credential  # an attacker copied it (XSS, a log file, a shared machine)
        before = server.check(stolen)
        server.logout(credential)  # alice logs out; her browser drops the cookie
        after = server.check(stolen)
        remaining = "-"
        if isinstance(server, Tokens) and after:
            remaining = jwt.decode(stolen, SECRET, algorithms=["HS256"])["exp"] - time.time()
        out[name] = {
            "client holds": f"{len(credential)} chars",
            "server holds after logout": (
                f"{len(server.store)} session(s)"
                if isinstance(server, Sessions)
                else f"{len(server.revoked)} revoked id(s)"
                if server.revoked is not None
                else "nothing"
            ),
            "stolen copy before logout": before,
            "stolen copy after logout": after,
            "still valid for": remaining if remaining == "-" else f"~{round(remaining)} s",
            "store lookups (2 requests)": server.lookups,
        }
    return out


# --8<-- [end:run]


def main() -> None:
    for name, facts in run().items():
        print(f"{name}:")
        for fact, value in facts.items():
            print(f"  {fact:27} {value}")


if __name__ == "__main__":
    main()
