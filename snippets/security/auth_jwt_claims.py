"""JWT claims that PyJWT enforces: exp, nbf, aud and iss, each rejection with PyJWT's real
exception; leeway for clock skew; and a token without exp, accepted unless it is required.

Run: python snippets/security/auth_jwt_claims.py
"""

from __future__ import annotations

import secrets
import time

import jwt

SECRET = secrets.token_bytes(32)  # HS256 here: one service signs and verifies
ISSUER = "https://auth.example.test"
AUDIENCE = "orders-api"


# --8<-- [start:verify]
def verify(token: str, leeway: float = 0, require: tuple[str, ...] = ()) -> dict:
    """What an API that accepts these tokens calls for each request."""
    return jwt.decode(
        token,
        SECRET,
        algorithms=["HS256"],  # one algorithm for this key
        audience=AUDIENCE,  # a token for another service is not for us
        issuer=ISSUER,  # nor one from another issuer
        leeway=leeway,  # seconds of clock skew allowed on exp, nbf and iat
        options={"require": list(require)},  # claims that must be present
    )


# --8<-- [end:verify]


# --8<-- [start:cases]
def token(**claims: object) -> str:
    now = int(time.time())
    base = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, SECRET, "HS256")


def cases() -> dict[str, str]:
    now = int(time.time())
    runs = {
        "valid for 300 s": (token(), {}),
        "exp 30 s ago": (token(exp=now - 30), {}),
        "exp 5 s ago, leeway 10 s": (token(exp=now - 5), {"leeway": 10}),
        "exp 5 s ago, leeway 0": (token(exp=now - 5), {}),
        "nbf in 60 s": (token(nbf=now + 60), {}),
        "aud billing-api": (token(aud="billing-api"), {}),
        "no aud": (token(aud=None), {}),
        "iss https://evil.example.test": (token(iss="https://evil.example.test"), {}),
        "no iss": (token(iss=None), {}),
        "no exp": (token(exp=None), {}),
        "no exp, exp required": (token(exp=None), {"require": ("exp",)}),
        "exp not a number": (token(exp="tomorrow"), {}),
    }
    out = {}
    for name, (t, kwargs) in runs.items():
        try:
            claims = verify(t, **kwargs)
            out[name] = "accepted" + ("" if "exp" in claims else ": no exp, it never expires")
        except jwt.PyJWTError as error:
            out[name] = f"{type(error).__name__}: {error}"
    return out


# --8<-- [end:cases]


def main() -> None:
    for name, result in cases().items():
        print(f"{name:32} {result}")


if __name__ == "__main__":
    main()
