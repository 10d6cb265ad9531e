"""JWT algorithm confusion: a naive verifier that trusts the token's `alg` header accepts
`alg: none` and an HS256 token whose HMAC key is the server's RS256 public key; PyJWT with
`algorithms=["RS256"]` rejects both, and refuses a PEM public key as an HMAC secret.

Run: python snippets/security/auth_jwt_alg.py
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()  # RFC 7515 section 2


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --8<-- [start:naive]
def naive_verify(token: str, public_pem: bytes) -> dict:
    """Verifies with whatever algorithm the token's header names: the mistake."""
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(unb64url(header_b64))
    signing_input = f"{header_b64}.{payload_b64}".encode()
    signature = unb64url(signature_b64)
    if header["alg"] == "none":  # "unsecured JWT" (RFC 7519 section 6): no signature at all
        pass
    elif header["alg"] == "HS256":  # HMAC: the key is a shared secret... here, the PEM bytes
        expected = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            raise ValueError("bad HS256 signature")
    elif header["alg"] == "RS256":
        key = serialization.load_pem_public_key(public_pem)
        try:
            key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise ValueError("bad RS256 signature") from None
    else:
        raise ValueError(f"unknown alg {header['alg']!r}")
    return json.loads(unb64url(payload_b64))


def strict_verify(token: str, public_pem: bytes) -> dict:
    """PyJWT, told which algorithm this key is for (RFC 8725 section 3.1)."""
    return jwt.decode(token, public_pem, algorithms=["RS256"])


# --8<-- [end:naive]


# --8<-- [start:forge]
def forge_none(claims: dict) -> str:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."  # empty signature


def forge_hs256(claims: dict, public_pem: bytes) -> str:
    """Signed with HMAC-SHA256 using the server's *public* key, which anyone can download."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{b64url(json.dumps(claims).encode())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


# --8<-- [end:forge]


def outcome(verify, token: str, public_pem: bytes) -> str:
    try:
        return f"accepted {verify(token, public_pem)}"
    except (ValueError, jwt.PyJWTError) as error:  # PyJWT's errors; ours are ValueError
        return f"rejected: {type(error).__name__}: {error}"


@functools.cache
def keys() -> tuple[bytes, bytes]:
    """The server's RSA key pair (PEM), made once per run."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


# --8<-- [start:run]
def run() -> dict[str, tuple[str, str]]:
    """Each token: (what the naive verifier did, what PyJWT with algorithms=["RS256"] did)."""
    private_pem, public_pem = keys()
    alice = {"sub": "alice", "role": "user"}
    admin = {"sub": "alice", "role": "admin"}
    genuine = jwt.encode(alice, private_pem, algorithm="RS256")  # the server's own token
    header, _, signature = genuine.split(".")
    tokens = {
        "genuine RS256 token": genuine,
        "payload changed to admin, RS256 signature kept": (
            f"{header}.{b64url(json.dumps(admin).encode())}.{signature}"
        ),
        "alg none, role admin": forge_none(admin),
        "HS256 keyed with the public key, role admin": forge_hs256(admin, public_pem),
    }
    return {
        name: (outcome(naive_verify, t, public_pem), outcome(strict_verify, t, public_pem))
        for name, t in tokens.items()
    }


def pyjwt_refuses_public_key_as_hmac_secret() -> dict[str, str]:
    """Recent PyJWT will neither sign nor verify HS256 with a PEM public key as the secret."""
    _, public_pem = keys()
    out = {}
    try:
        jwt.encode({"role": "admin"}, public_pem, algorithm="HS256")
    except jwt.PyJWTError as error:
        out["encode(..., public_pem, algorithm='HS256')"] = f"{type(error).__name__}: {error}"
    forged = forge_hs256({"role": "admin"}, public_pem)
    for algorithms in (["HS256"], ["RS256", "HS256"]):
        try:
            jwt.decode(forged, public_pem, algorithms=algorithms)
        except jwt.PyJWTError as error:
            out[f"decode(forged, public_pem, algorithms={algorithms})"] = (
                f"{type(error).__name__}: {error}"
            )
    return out


# --8<-- [end:run]


def main() -> None:
    print(f"PyJWT {jwt.__version__}")
    for name, (naive, strict) in run().items():
        print(f"{name}:\n  naive verifier: {naive}\n  PyJWT RS256:    {strict}")
    print("PyJWT and a PEM public key as an HMAC secret:")
    for call, result in pyjwt_refuses_public_key_as_hmac_secret().items():
        print(f"  {call}\n    -> {result}")


if __name__ == "__main__":
    main()
