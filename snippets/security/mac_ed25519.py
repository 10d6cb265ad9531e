"""Ed25519 signatures with the cryptography library: the public key verifies, a flipped bit
in the message or the signature fails, another key's public key fails; and unlike a MAC,
the verifier cannot make signatures.

Run: python snippets/security/mac_ed25519.py
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


# --8<-- [start:sign]
def flip_bit(data: bytes, bit: int) -> bytes:
    if not 0 <= bit < len(data) * 8:
        raise ValueError(f"bit {bit} is outside {len(data)} bytes")
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def verifies(public: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public.verify(signature, message)  # returns None, or raises InvalidSignature
        return True
    except InvalidSignature:
        return False


def cases() -> dict[str, bool]:
    """Sign one release note with the publisher's private key; check variations with
    public keys only, as every downloader does."""
    publisher, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    message = b"release 2.4.1 sha256=9f86d081884c7d659a2feaa0c55ad015"
    signature = publisher.sign(message)
    public = publisher.public_key()
    return {
        "the message as signed": verifies(public, signature, message),
        "one bit flipped in the message": verifies(public, signature, flip_bit(message, 3)),
        "one bit flipped in the signature": verifies(public, flip_bit(signature, 3), message),
        "checked with another key's public key": verifies(other.public_key(), signature, message),
        "signed by another private key": verifies(public, other.sign(message), message),
        "signing twice gives the same signature": publisher.sign(message) == signature,
    }


# --8<-- [end:sign]


def main() -> None:
    key = Ed25519PrivateKey.generate()
    sizes = (len(key.public_key().public_bytes_raw()), len(key.sign(b"x")))
    print(f"Ed25519: {sizes[0]}-byte public key, {sizes[1]}-byte signature")
    for case, result in cases().items():
        print(f"  {case:40} {result}")


if __name__ == "__main__":
    main()
