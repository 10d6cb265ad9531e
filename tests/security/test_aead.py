"""Authenticated encryption (docs/security/aead.md): tampering is caught, the control opens;
nonce reuse leaks P1^P2 and H and a forgery verifies, fresh nonces stop both; ECB repeats
blocks, CBC is malleable, GCM rejects the same flip. Our GF(2^128) and GHASH are checked
against cryptography's AES-GCM tags before the attack relies on them."""

from __future__ import annotations

import os

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import load_snippet

nr = load_snippet("security/aead_nonce_reuse")
mc = load_snippet("security/aead_modes_compared")

elements = st.integers(min_value=0, max_value=(1 << 128) - 1)
nonzero = st.integers(min_value=1, max_value=(1 << 128) - 1)
ONE = 1 << 127  # the polynomial 1 in GCM's bit order


# --- GF(2^128) and GHASH: properties, then agreement with the real implementation ----------


@settings(max_examples=40, deadline=None)
@given(elements, elements, elements)
def test_gf_mul_is_a_commutative_ring_multiplication(a, b, c):
    assert nr.gf_mul(a, b) == nr.gf_mul(b, a)
    assert nr.gf_mul(a, nr.gf_mul(b, c)) == nr.gf_mul(nr.gf_mul(a, b), c)
    assert nr.gf_mul(a, b ^ c) == nr.gf_mul(a, b) ^ nr.gf_mul(a, c)  # distributes over xor
    assert nr.gf_mul(a, ONE) == a and nr.gf_mul(a, 0) == 0


@settings(max_examples=15, deadline=None)
@given(nonzero)
def test_inverse_and_square_root(a):
    assert nr.gf_mul(a, nr.gf_inv(a)) == ONE
    root = nr.gf_sqrt(a)
    assert nr.gf_mul(root, root) == a


def test_gf_mul_reduces_with_gcms_polynomial():
    """x^127 . x = x^128 = 1 + x + x^2 + x^7: bit 127 is the int's lowest bit, and the
    result is R = 11100001 || 0^120 (SP 800-38D §6.3). A wrong bit order fails this."""
    x = 1 << 126  # the polynomial x (bit x1)
    x127 = 1  # bit x127
    assert nr.gf_mul(x127, x) == nr.R == 0xE1 << 120


def test_ghash_matches_the_nist_test_case_2():
    """GCM spec (McGrew & Viega) test case 2: K = 0^128, IV = 0^96, P = 0^128."""
    key, nonce = bytes(16), bytes(12)
    sealed = AESGCM(key).encrypt(nonce, bytes(16), None)
    assert sealed.hex() == "0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf"
    assert nr.gcm_tag(key, nonce, b"", sealed[:16]) == sealed[16:]


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    st.binary(min_size=12, max_size=12),
    st.binary(max_size=70),
    st.binary(max_size=70),
)
def test_our_tag_equals_cryptographys_for_any_key_nonce_aad_and_message(key, nonce, aad, msg):
    sealed = AESGCM(key).encrypt(nonce, msg, aad)
    assert nr.gcm_tag(key, nonce, aad, sealed[: len(msg)]) == sealed[len(msg) :]


def test_bad_input_gets_a_clear_error():
    with pytest.raises(ValueError, match="16 bytes, got 15"):
        nr.to_int(bytes(15))
    with pytest.raises(ValueError, match="128-bit"):
        nr.gf_mul(1 << 128, 1)
    with pytest.raises(ZeroDivisionError):
        nr.gf_inv(0)
    with pytest.raises(ValueError, match="96-bit nonce"):
        nr.gcm_tag(bytes(16), bytes(8), b"", b"")
    with pytest.raises(ValueError, match="one block and a tag"):
        nr.recover_h(bytes(33), bytes(32))
    with pytest.raises(ValueError, match="P1 == P2"):  # one message sent twice: C1 ^ C2 = 0
        nr.recover_h(bytes(32), bytes(32))
    with pytest.raises(ValueError, match="xor of 3 and 4"):
        nr.xor(b"abc", b"abcd")
    with pytest.raises(ValueError, match="multiple of 16"):
        mc.encrypt(bytes(16), "ECB", b"x" * 17)
    with pytest.raises(ValueError, match="equal length"):
        mc.flip(bytes(32), 0, b"usr", b"admin")


# --- tampering ------------------------------------------------------------------------------


def test_every_flipped_byte_of_ciphertext_tag_and_aad_raises_invalid_tag():
    results = nr.tamper_results(os.urandom(16), b"transfer $100 to bob", b"user=alice;seq=1")
    assert results == {
        "untouched (control)": (1, 1),
        "ciphertext": (0, 20),
        "tag": (0, 16),
        "associated data": (0, 16),
    }


def test_control_the_untouched_message_decrypts_and_a_wrong_nonce_does_not():
    key, nonce = os.urandom(16), os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, b"hello", b"aad")
    assert AESGCM(key).decrypt(nonce, sealed, b"aad") == b"hello"
    with pytest.raises(InvalidTag):
        AESGCM(key).decrypt(bytes(12), sealed, b"aad")


# --- nonce reuse: the forbidden attack, and its control ------------------------------------


def test_nonce_reuse_leaks_p2_and_h_and_the_forgery_verifies():
    result = nr.nonce_reuse_attack(reuse=True)
    assert result == {
        "p2 recovered": True,
        "h is E_K(0)": True,
        "forgery opened": b"pay mallory $999",
    }


def test_control_fresh_nonces_defeat_the_same_attack():
    result = nr.nonce_reuse_attack(reuse=False)
    assert result == {"p2 recovered": False, "h is E_K(0)": False, "forgery opened": None}


def test_the_h_squared_shortcut_forges_the_same_tag():
    """T3 = T1 ^ (C1 ^ C3) . H^2 for a same-length message without AAD: no square root or
    mask needed, and AESGCM.decrypt accepts it."""
    key, nonce = os.urandom(16), os.urandom(12)
    aead = AESGCM(key)
    s1, s2 = aead.encrypt(nonce, b"A" * 16, None), aead.encrypt(nonce, b"B" * 16, None)
    h = nr.recover_h(s1, s2)
    c3 = os.urandom(16)
    t3 = nr.to_int(s1[16:]) ^ nr.gf_mul(nr.to_int(s1[:16]) ^ nr.to_int(c3), nr.gf_mul(h, h))
    forged = c3 + t3.to_bytes(16, "big")
    assert forged == nr.forge(s1, b"A" * 16, h, nr.xor(nr.xor(s1[:16], b"A" * 16), c3), b"")
    assert len(aead.decrypt(nonce, forged, None)) == 16


def test_break_it_a_wrong_known_plaintext_still_forges_a_valid_tag():
    """Break it: guess P1 wrong. The tag still verifies (it depends on H and C, not on P1);
    only the plaintext the victim reads is off by the guess's error."""
    key, nonce = os.urandom(16), os.urandom(12)
    aead = AESGCM(key)
    p1 = b"pay alice $00010"
    s1, s2 = aead.encrypt(nonce, p1, None), aead.encrypt(nonce, b"pin=4071;id=9321", None)
    h = nr.recover_h(s1, s2)
    wrong = b"pay alice $00099"
    opened = aead.decrypt(nonce, nr.forge(s1, wrong, h, b"pay mallory $999", b""), None)
    assert opened != b"pay mallory $999"
    assert nr.xor(opened, b"pay mallory $999") == nr.xor(p1, wrong)


# --- ECB and CBC ---------------------------------------------------------------------------


def test_ecb_repeats_blocks_cbc_and_gcm_do_not():
    key, plaintext = os.urandom(16), mc.repetitive_plaintext()
    assert mc.distinct_blocks(plaintext) == 2
    counts = {m: mc.distinct_blocks(mc.encrypt(key, m, plaintext)[-len(plaintext) :])
              for m in ("ECB", "CBC", "GCM")}  # fmt: skip
    assert counts == {"ECB": 2, "CBC": 64, "GCM": 64}


def test_cbc_bit_flip_goes_undetected_gcm_rejects_it():
    assert mc.bit_flip("CBC") == "decrypted b'role=adm;user=bob;limit=100'"
    assert mc.bit_flip("GCM") == "InvalidTag"


def test_control_without_the_flip_both_modes_return_the_message():
    key, nonce = os.urandom(16), os.urandom(12)
    assert mc.cbc_open(key, mc.cbc_seal(key, mc.MESSAGE)) == mc.MESSAGE
    assert AESGCM(key).decrypt(nonce, AESGCM(key).encrypt(nonce, mc.MESSAGE, None), None) == (
        mc.MESSAGE
    )


def test_break_it_streaming_gcm_releases_the_edited_plaintext_before_finalize_raises():
    """Break it: cryptography's streaming GCM decryptor. update() returns plaintext before
    the tag is checked; finalize() raises InvalidTag only afterwards. The flip comes out
    exactly as CBC's did, and equals plain AES-CTR from counter J0+1 (SP 800-38D §7.2)."""
    key, nonce = os.urandom(16), os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, mc.MESSAGE, None)
    tag = sealed[len(mc.MESSAGE) :]
    at = mc.MESSAGE.index(b"usr")
    flipped = mc.flip(sealed, at, b"usr", b"adm")[: len(mc.MESSAGE)]
    decryptor = Cipher(algorithms.AES(key), modes.GCM(nonce, tag)).decryptor()
    released = decryptor.update(flipped)
    assert released == b"role=adm;user=bob;limit=100"  # out, before any check
    with pytest.raises(InvalidTag):
        decryptor.finalize()  # the check comes after the plaintext
    ctr = Cipher(algorithms.AES(key), modes.CTR(nonce + b"\x00\x00\x00\x02")).decryptor()
    assert ctr.update(flipped) + ctr.finalize() == released
    with pytest.raises(InvalidTag):  # the one-shot API on the same bytes: nothing released
        AESGCM(key).decrypt(nonce, flipped + tag, None)


def test_control_streaming_gcm_on_the_untouched_message_finalizes():
    key, nonce = os.urandom(16), os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, mc.MESSAGE, None)
    n = len(mc.MESSAGE)
    decryptor = Cipher(algorithms.AES(key), modes.GCM(nonce, sealed[n:])).decryptor()
    assert decryptor.update(sealed[:n]) + decryptor.finalize() == mc.MESSAGE
