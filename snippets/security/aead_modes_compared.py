"""Why not ECB or bare CBC: ECB encrypts equal blocks to equal ciphertext (counted), and
flipping bits of a CBC IV changes the decrypted plaintext with no error, while AES-GCM
rejects the same flip with InvalidTag.

Run: python snippets/security/aead_modes_compared.py
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

BLOCK = 16


# --8<-- [start:ecb]
def encrypt(key: bytes, mode: str, plaintext: bytes) -> bytes:
    """AES in one of three modes. The plaintext must be block-aligned (no padding here)."""
    if len(plaintext) % BLOCK:
        raise ValueError(f"plaintext must be a multiple of 16 bytes, got {len(plaintext)}")
    if mode == "GCM":
        nonce = os.urandom(12)
        return nonce + AESGCM(key).encrypt(nonce, plaintext, None)[: len(plaintext)]
    iv = os.urandom(BLOCK)
    chosen = {"ECB": modes.ECB(), "CBC": modes.CBC(iv)}[mode]
    encryptor = Cipher(algorithms.AES(key), chosen).encryptor()
    body = encryptor.update(plaintext) + encryptor.finalize()
    return body if mode == "ECB" else iv + body


def distinct_blocks(data: bytes) -> int:
    return len({data[i : i + BLOCK] for i in range(0, len(data), BLOCK)})


def repetitive_plaintext(rows: int = 64) -> bytes:
    """A table of 16-byte rows where most rows are equal (like a bitmap or a padded record)."""
    return b"".join(b"status=active;;;" if i % 8 else b"status=blocked;;" for i in range(rows))


# --8<-- [end:ecb]


# --8<-- [start:cbc]
def cbc_seal(key: bytes, message: bytes) -> bytes:
    iv = os.urandom(BLOCK)
    padder = padding.PKCS7(128).padder()
    data = padder.update(message) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(data) + encryptor.finalize()


def cbc_open(key: bytes, sealed: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(sealed[:BLOCK])).decryptor()
    data = decryptor.update(sealed[BLOCK:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(data) + unpadder.finalize()


def flip(sealed: bytes, offset: int, known: bytes, wanted: bytes) -> bytes:
    """CBC: P0 = D_K(C0) ^ IV, so IV ^ (known ^ wanted) turns `known` into `wanted` in P0.
    GCM is counter mode: P = C ^ keystream, so the same xor on C changes P the same way."""
    if len(known) != len(wanted):
        raise ValueError("the flip keeps the length: known and wanted must be equal length")
    out = bytearray(sealed)
    for i, (k, w) in enumerate(zip(known, wanted, strict=True)):
        out[offset + i] ^= k ^ w
    return bytes(out)


MESSAGE = b"role=usr;user=bob;limit=100"


def bit_flip(mode: str) -> str:
    """Turn role=usr into role=adm without the key; what does the receiver get?"""
    key = AESGCM.generate_key(bit_length=128)
    at = MESSAGE.index(b"usr")
    if mode == "CBC":
        sealed = flip(cbc_seal(key, MESSAGE), at, b"usr", b"adm")  # offset in the IV
        return f"decrypted {cbc_open(key, sealed)!r}"
    nonce = os.urandom(12)
    sealed = flip(AESGCM(key).encrypt(nonce, MESSAGE, None), at, b"usr", b"adm")
    try:
        return f"decrypted {AESGCM(key).decrypt(nonce, sealed, None)!r}"
    except InvalidTag:
        return "InvalidTag"


# --8<-- [end:cbc]


def main() -> None:
    key = os.urandom(16)
    plaintext = repetitive_plaintext()
    total = len(plaintext) // BLOCK
    print(f"{total} plaintext blocks, {distinct_blocks(plaintext)} distinct:")
    for mode in ("ECB", "CBC", "GCM"):
        body = encrypt(key, mode, plaintext)[-len(plaintext) :]  # without IV or nonce
        print(f"  {mode}: {distinct_blocks(body):2} distinct ciphertext blocks of {total}")

    print(f"\nFlipping 'usr' to 'adm' in {MESSAGE!r}, without the key:")
    for mode in ("CBC", "GCM"):
        print(f"  {mode}: {bit_flip(mode)}")


if __name__ == "__main__":
    main()
