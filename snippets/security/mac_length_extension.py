"""A naive MAC, sha256(key || message), forged by length extension without the key: the
attacker appends "&role=admin" and computes a tag that verifies. HMAC (RFC 2104) over the
same message refuses every such forgery.

Run: python snippets/security/mac_length_extension.py
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

# --8<-- [start:sha256]
# FIPS 180-4 §4.2.2: the first 32 bits of the fractional parts of the cube roots of the
# first 64 primes; §5.3.3: the initial hash value, from the square roots of the first 8.
K = [
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
]  # fmt: skip
H0 = (
    0x6A09E667,
    0xBB67AE85,
    0x3C6EF372,
    0xA54FF53A,
    0x510E527F,
    0x9B05688C,
    0x1F83D9AB,
    0x5BE0CD19,
)
MASK = 0xFFFFFFFF


def padding(length: int) -> bytes:
    """FIPS 180-4 §5.1.1 for a message of `length` BYTES: a 1 bit (0x80), then the fewest
    zero bits k with l + 1 + k = 448 (mod 512), then l, the length in bits, as 64 bits."""
    if not 0 <= length < 2**61:
        raise ValueError(f"SHA-256 hashes messages of 0 to 2^61 - 1 bytes, not {length}")
    zeros = (55 - length) % 64  # 1 + zeros + 8 bytes brings the total to a multiple of 64
    return b"\x80" + bytes(zeros) + struct.pack(">Q", length * 8)


def rotr(x: int, n: int) -> int:
    return (x >> n | x << (32 - n)) & MASK


def compress(state: tuple[int, ...], block: bytes) -> tuple[int, ...]:
    """FIPS 180-4 §6.2.2, one 64-byte block: H(i) = H(i-1) + the 64 rounds' result."""
    if len(block) != 64:
        raise ValueError(f"SHA-256 compresses 64-byte blocks, got {len(block)}")
    w = list(struct.unpack(">16L", block))
    for t in range(16, 64):
        s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ w[t - 15] >> 3
        s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ w[t - 2] >> 10
        w.append((w[t - 16] + s0 + w[t - 7] + s1) & MASK)
    a, b, c, d, e, f, g, h = state
    for t in range(64):
        t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + (e & f ^ ~e & g) + K[t] + w[t]
        t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + (a & b ^ a & c ^ b & c)
        a, b, c, d, e, f, g, h = (t1 + t2) & MASK, a, b, c, (d + t1) & MASK, e, f, g
    return tuple((x + y) & MASK for x, y in zip(state, (a, b, c, d, e, f, g, h), strict=True))


def sha256(message: bytes, state: tuple[int, ...] = H0, already: int = 0) -> bytes:
    """SHA-256 of `message`; or, given the state after `already` bytes, of their sequel.
    The digest IS the final state H(N) (§6.2.2 step 4): nothing else is kept secret."""
    data = message + padding(already + len(message))
    for i in range(0, len(data), 64):
        state = compress(state, data[i : i + 64])
    return struct.pack(">8L", *state)


# --8<-- [end:sha256]


# --8<-- [start:extend]
def extend(tag: bytes, message: bytes, key_length: int, suffix: bytes) -> tuple[bytes, bytes]:
    """Without the key: the naive tag is the state after key || message || padding, so we
    keep hashing from it. Returns (the forged message, its tag)."""
    if len(tag) != 32:
        raise ValueError(f"a SHA-256 tag is 32 bytes, got {len(tag)}")
    glue = padding(key_length + len(message))  # what SHA-256 appended to key || message
    state = struct.unpack(">8L", tag)
    forged_tag = sha256(suffix, state, already=key_length + len(message) + len(glue))
    return message + glue + suffix, forged_tag


# --8<-- [end:extend]


# --8<-- [start:server]
class Server:
    """Issues tags for messages it approves and checks tags on what comes back. The key
    never leaves it. mode: "naive" = sha256(key || message), "hmac" = HMAC-SHA256."""

    def __init__(self, mode: str) -> None:
        self.mode, self._key = mode, os.urandom(32)

    def tag(self, message: bytes) -> bytes:
        if self.mode == "hmac":
            return hmac.new(self._key, message, hashlib.sha256).digest()
        return hashlib.sha256(self._key + message).digest()

    def verify(self, message: bytes, tag: bytes) -> bool:
        return hmac.compare_digest(self.tag(message), tag)

    def role(self, message: bytes) -> str:
        """The last role= wins, as with many query-string parsers."""
        fields = [f for f in message.split(b"&") if f.startswith(b"role=")]
        return fields[-1][5:].decode("latin-1") if fields else "-"


def attack(server: Server, max_key_length: int = 64) -> dict[int, bytes]:
    """Get a tag for an ordinary message, then guess the key length, 1 to max_key_length:
    the server's own verify says which guess was right. Returns {key length: forgery}
    for every forgery the server accepted."""
    message = b"user=alice&role=user"
    tag = server.tag(message)
    accepted = {}
    for key_length in range(1, max_key_length + 1):
        forged, forged_tag = extend(tag, message, key_length, b"&role=admin")
        if server.verify(forged, forged_tag):
            accepted[key_length] = forged
    return accepted


# --8<-- [end:server]


def main() -> None:
    samples = [os.urandom(n) for n in (0, 1, 55, 56, 63, 64, 65, 200)]
    same = all(sha256(m) == hashlib.sha256(m).digest() for m in samples)
    print(f"our SHA-256 equals hashlib's on {len(samples)} lengths (0 to 200 bytes): {same}")
    for mode in ("naive", "hmac"):
        server = Server(mode)
        accepted = attack(server)
        name = "sha256(key || message)" if mode == "naive" else "HMAC-SHA256"
        print(f"\n{name}: 64 forgeries tried (key lengths 1-64), {len(accepted)} accepted")
        for key_length, forged in accepted.items():
            print(f"  accepted at key length {key_length}: {forged!r}")
            print(f"  the server reads role = {server.role(forged)}")


if __name__ == "__main__":
    main()
