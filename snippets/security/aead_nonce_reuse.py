"""AES-GCM with the cryptography library: any changed byte of ciphertext, tag or associated
data raises InvalidTag; reusing a nonce leaks P1 xor P2 and the GHASH key H, and with H we
forge a message that AESGCM.decrypt accepts. With fresh nonces the same attack fails.

Run: python snippets/security/aead_nonce_reuse.py
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

BLOCK = 16


# --8<-- [start:gf]
# GF(2^128) as NIST SP 800-38D §6.3 defines it for GCM. A 16-byte block is read as the bit
# string x0 x1 ... x127, x0 the most significant bit of byte 0; bit i is the coefficient of
# x^i in the polynomial. So the int int.from_bytes(block, "big") holds x0 in its TOP bit,
# and "multiply by x" is a right shift of that int (bits move to higher index i).
R = 0xE1 << 120  # 11100001 || 0^120: x^128 = 1 + x + x^2 + x^7, reduced into bits 0, 1, 2, 7


def gf_mul(x: int, y: int) -> int:
    """Algorithm 1 of SP 800-38D §6.3, bit for bit: X . Y in GCM's bit order."""
    if not (0 <= x < 1 << 128 and 0 <= y < 1 << 128):
        raise ValueError("GF(2^128) elements are 128-bit integers")
    z, v = 0, y
    for i in range(128):
        if (x >> (127 - i)) & 1:  # x_i, counted from the most significant bit
            z ^= v
        v = (v >> 1) ^ R if v & 1 else v >> 1  # LSB1(V) = the last bit x127
    return z


def gf_pow(x: int, e: int) -> int:
    result = 1 << 127  # the field's 1 is the polynomial "1": bit x0, the top bit
    while e:
        if e & 1:
            result = gf_mul(result, x)
        x = gf_mul(x, x)
        e >>= 1
    return result


def gf_inv(x: int) -> int:
    """x^(2^128 - 2) = x^-1: the multiplicative group has 2^128 - 1 elements."""
    if x == 0:
        raise ZeroDivisionError("0 has no inverse in GF(2^128)")
    return gf_pow(x, (1 << 128) - 2)


def gf_sqrt(x: int) -> int:
    """x^(2^127): squaring is a bijection in characteristic 2, and (x^(2^127))^2 = x."""
    return gf_pow(x, 1 << 127)


# --8<-- [end:gf]


# --8<-- [start:ghash]
def to_int(block: bytes) -> int:
    if len(block) != BLOCK:
        raise ValueError(f"a GCM block is 16 bytes, got {len(block)}")
    return int.from_bytes(block, "big")


def blocks(data: bytes) -> list[int]:
    """Split into 16-byte blocks, the last one padded with zeros (SP 800-38D §7.1, 0^v)."""
    padded = data + bytes(-len(data) % BLOCK)
    return [to_int(padded[i : i + BLOCK]) for i in range(0, len(padded), BLOCK)]


def ghash(h: int, aad: bytes, ciphertext: bytes) -> int:
    """GHASH_H(A || 0^v || C || 0^u || [len(A)]64 || [len(C)]64), SP 800-38D §6.4 and §7.1."""
    lengths = (len(aad) * 8) << 64 | len(ciphertext) * 8
    y = 0
    for x in [*blocks(aad), *blocks(ciphertext), lengths]:
        y = gf_mul(y ^ x, h)
    return y


def aes_block(key: bytes, block: bytes) -> bytes:
    """One raw AES call, E_K(block): what GCM computes H = E_K(0^128) and E_K(J0) with."""
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def gcm_tag(key: bytes, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes:
    """Our own tag: E_K(J0) xor GHASH_H(...), J0 = nonce || 0^31 || 1 for a 96-bit nonce."""
    if len(nonce) != 12:
        raise ValueError(f"this tag function takes a 96-bit nonce, got {len(nonce) * 8} bits")
    h = to_int(aes_block(key, bytes(BLOCK)))
    mask = to_int(aes_block(key, nonce + b"\x00\x00\x00\x01"))
    return (mask ^ ghash(h, aad, ciphertext)).to_bytes(BLOCK, "big")


# --8<-- [end:ghash]


# --8<-- [start:tamper]
def tamper_results(key: bytes, message: bytes, aad: bytes) -> dict[str, tuple[int, int]]:
    """Flip one bit in each byte of ciphertext, tag and AAD in turn: how many decrypt?
    The control first: the untouched message, which must decrypt to what was sealed."""
    aead, nonce = AESGCM(key), os.urandom(12)
    sealed = aead.encrypt(nonce, message, aad)  # ciphertext || 16-byte tag
    results = {"untouched (control)": (int(aead.decrypt(nonce, sealed, aad) == message), 1)}
    for part, length in (
        ("ciphertext", len(sealed) - 16),
        ("tag", 16),
        ("associated data", len(aad)),
    ):
        accepted = 0
        for i in range(length):
            s, a = bytearray(sealed), bytearray(aad)
            if part == "associated data":
                a[i] ^= 0x01
            else:
                s[i + (len(sealed) - 16 if part == "tag" else 0)] ^= 0x01
            try:
                aead.decrypt(nonce, bytes(s), bytes(a))
                accepted += 1
            except InvalidTag:
                pass
        results[part] = (accepted, length)
    return results


# --8<-- [end:tamper]


# --8<-- [start:attack]
def xor(a: bytes, b: bytes) -> bytes:
    if len(a) != len(b):
        raise ValueError(f"xor of {len(a)} and {len(b)} bytes")
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def recover_h(sealed1: bytes, sealed2: bytes) -> int:
    """Two single-block messages, no AAD, the SAME nonce: T = E_K(J0) ^ C.H^2 ^ L.H, where
    E_K(J0) and the length block L are the same for both, so T1 ^ T2 = (C1 ^ C2) . H^2.
    Needs P1 != P2 (else C1 ^ C2 = 0 and there is nothing to divide by). With several
    blocks or AAD the same subtraction gives a polynomial in H of higher degree, whose
    roots are a small set of CANDIDATES for H (Joux 2006), not H itself."""
    for sealed in (sealed1, sealed2):
        if len(sealed) != 2 * BLOCK:
            raise ValueError(f"expected one block and a tag (32 bytes), got {len(sealed)}")
    c1, t1 = to_int(sealed1[:BLOCK]), to_int(sealed1[BLOCK:])
    c2, t2 = to_int(sealed2[:BLOCK]), to_int(sealed2[BLOCK:])
    if c1 == c2:
        raise ValueError("equal ciphertexts (P1 == P2 under one nonce) give no equation for H")
    h_squared = gf_mul(t1 ^ t2, gf_inv(c1 ^ c2))
    return gf_sqrt(h_squared)


def forge(sealed1: bytes, known1: bytes, h: int, wanted: bytes, aad: bytes) -> bytes:
    """The attacker knows P1 (and its ciphertext and tag) and now H. The keystream is
    C1 ^ P1; the mask E_K(J0) is T1 ^ GHASH_H(C1). Any message, any AAD, same nonce."""
    c1, t1 = sealed1[:BLOCK], sealed1[BLOCK:]
    c3 = xor(xor(c1, known1), wanted)
    mask = to_int(t1) ^ ghash(h, b"", c1)
    return c3 + (mask ^ ghash(h, aad, c3)).to_bytes(BLOCK, "big")


def nonce_reuse_attack(reuse: bool) -> dict[str, object]:
    """The victim seals two 16-byte messages (same nonce, or fresh ones); the attacker sees
    both sealed messages and knows the first plaintext. Returns what the attacker got."""
    key = AESGCM.generate_key(bit_length=128)
    victim = AESGCM(key)
    p1, p2 = b"pay alice $00010", b"pin=4071;id=9321"  # P2 is the secret
    n1 = os.urandom(12)
    n2 = n1 if reuse else os.urandom(12)
    s1, s2 = victim.encrypt(n1, p1, None), victim.encrypt(n2, p2, None)

    recovered_p2 = xor(xor(s1[:BLOCK], s2[:BLOCK]), p1)  # C1^C2 = P1^P2 under one keystream
    h = recover_h(s1, s2)
    forged = forge(s1, p1, h, b"pay mallory $999", aad=b"role=admin")
    try:
        opened = victim.decrypt(n1, forged, b"role=admin")
    except InvalidTag:
        opened = None
    return {
        "p2 recovered": recovered_p2 == p2,
        "h is E_K(0)": h == to_int(aes_block(key, bytes(BLOCK))),
        "forgery opened": opened,
    }


# --8<-- [end:attack]


def main() -> None:
    key = AESGCM.generate_key(bit_length=128)
    aad = b"user=alice;seq=1"
    print("Tampering with AES-GCM (one bit flipped in each byte, in turn):")
    for part, (accepted, total) in tamper_results(key, b"transfer $100 to bob", aad).items():
        print(f"  {part:20} {accepted:2} of {total} accepted, {total - accepted:2} InvalidTag")

    ours_match = all(
        gcm_tag(k, n, a, AESGCM(k).encrypt(n, p, a)[: len(p)]) == AESGCM(k).encrypt(n, p, a)[-16:]
        for k, n, a, p in (
            (os.urandom(16), os.urandom(12), os.urandom(i), os.urandom(3 * i)) for i in range(8)
        )
    )
    print(f"\nOur GHASH tag equals cryptography's on 8 random messages: {ours_match}")

    for reuse in (True, False):
        result = nonce_reuse_attack(reuse)
        print("\nTwo messages under ONE nonce:" if reuse else "\nThe control, FRESH nonces:")
        print(f"  P2 recovered from C1 ^ C2 ^ P1:     {result['p2 recovered']}")
        print(f"  H from the two tags equals E_K(0):  {result['h is E_K(0)']}")
        opened = result["forgery opened"]
        verdict = f"ACCEPTED, plaintext {opened!r}" if opened else "InvalidTag"
        print(f"  forged message with AAD role=admin: {verdict}")


if __name__ == "__main__":
    main()
