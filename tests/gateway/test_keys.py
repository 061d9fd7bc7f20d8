"""Derived keys: one per purpose from one secret, HKDF-SHA256 as RFC 5869 defines it; the
envelope seals under them and still opens what was sealed under the earlier keys."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.envelope import FORMAT, Envelope, Unopened
from gateway.keys import Purpose, derive_key, legacy_key

SECRET = "data-key-0123456789abcdef"
AAD = b"person-id"


def _hkdf_by_hand(secret: bytes, info: bytes) -> bytes:
    """RFC 5869 with SHA-256, no salt (so a block of zeros) and one block of output."""
    pseudorandom = hmac.new(bytes(32), secret, hashlib.sha256).digest()
    return hmac.new(pseudorandom, info + b"\x01", hashlib.sha256).digest()


def _sealed_before_the_format_byte(key: bytes, plain: bytes, nonce: bytes) -> bytes:
    return nonce + AESGCM(key).encrypt(nonce, plain, AAD)


def test_every_purpose_gets_its_own_key_from_one_secret() -> None:
    keys = [derive_key(SECRET, purpose) for purpose in Purpose]
    assert len(keys) == 9
    assert len(set(keys)) == 9
    assert all(len(key) == 32 for key in keys)
    assert len({purpose.value for purpose in Purpose}) == 9


def test_keys_are_hkdf_sha256_of_the_secret_with_the_purpose_as_info() -> None:
    for purpose in Purpose:
        assert derive_key(SECRET, purpose) == _hkdf_by_hand(SECRET.encode(), purpose.value)
        assert derive_key(SECRET.encode(), purpose) == derive_key(SECRET, purpose)
    # The cursor label is the one cursors have always been sealed under.
    assert Purpose.PAGING_CURSOR.value == b"samlad paging cursor v1\x00"


def test_another_secret_gives_other_keys() -> None:
    for purpose in Purpose:
        assert derive_key(SECRET, purpose) != derive_key("another-" + SECRET, purpose)


def test_earlier_keys_are_those_rows_were_sealed_under() -> None:
    assert legacy_key(SECRET, Purpose.PERSON_INDEX) == (
        hashlib.sha256(b"samlad-person-index:" + SECRET.encode()).digest()
    )
    assert legacy_key(SECRET, Purpose.RECORD_CACHE) == (
        hashlib.sha256(b"samlad-record-cache-v2:" + SECRET.encode()).digest()
    )
    for purpose in (Purpose.PERSON_INDEX, Purpose.RECORD_CACHE):
        assert legacy_key(SECRET, purpose) != derive_key(SECRET, purpose)
    with pytest.raises(ValueError, match="no earlier key"):
        legacy_key(SECRET, Purpose.PAGING_CURSOR)


def test_the_envelope_seals_with_the_format_byte_and_a_fresh_nonce() -> None:
    envelope = Envelope(derive_key(SECRET, Purpose.PERSON_INDEX))
    sealed = envelope.seal(b"191212121212", AAD)
    assert sealed[:1] == FORMAT
    assert len(sealed) == 1 + 12 + len(b"191212121212") + 16
    assert b"191212121212" not in sealed
    assert envelope.seal(b"191212121212", AAD) != sealed
    assert envelope.open(sealed, AAD) == b"191212121212"
    assert not envelope.is_legacy(sealed, AAD)


def test_another_row_or_key_does_not_open() -> None:
    key = derive_key(SECRET, Purpose.PERSON_INDEX)
    sealed = Envelope(key).seal(b"191212121212", AAD)
    with pytest.raises(Unopened):
        Envelope(key).open(sealed, b"another-person-id")
    for other in (
        derive_key(SECRET, Purpose.RECORD_CACHE),
        derive_key("other" + SECRET, Purpose.PERSON_INDEX),
    ):
        with pytest.raises(Unopened):
            Envelope(other, key).open(sealed, AAD)  # nor as an earlier row


@pytest.mark.parametrize("nonce", [b"\x01" * 12, bytes(12), b"\x01" + b"\xff" * 11])
def test_rows_sealed_before_the_format_byte_open_under_the_earlier_key(nonce: bytes) -> None:
    old = legacy_key(SECRET, Purpose.PERSON_INDEX)
    envelope = Envelope(derive_key(SECRET, Purpose.PERSON_INDEX), old)
    sealed = _sealed_before_the_format_byte(old, b"191212121212", nonce)
    assert envelope.open(sealed, AAD) == b"191212121212"
    assert envelope.is_legacy(sealed, AAD)
    with pytest.raises(Unopened):
        envelope.open(sealed, b"another-person-id")
    with pytest.raises(Unopened):
        Envelope(derive_key(SECRET, Purpose.PERSON_INDEX)).open(sealed, AAD)  # no earlier key


def test_altered_or_junk_ciphertexts_do_not_open() -> None:
    old = legacy_key(SECRET, Purpose.PERSON_INDEX)
    envelope = Envelope(derive_key(SECRET, Purpose.PERSON_INDEX), old)
    for sealed in (
        envelope.seal(b"191212121212", AAD),
        _sealed_before_the_format_byte(old, b"191212121212", b"\x01" * 12),
    ):
        for index in range(len(sealed)):
            altered = bytearray(sealed)
            altered[index] ^= 0x01
            with pytest.raises(Unopened):
                envelope.open(bytes(altered), AAD)
        for cut in range(len(sealed)):
            with pytest.raises(Unopened):
                envelope.open(sealed[:cut], AAD)
    with pytest.raises(Unopened):  # the format byte taken off: not an earlier row either
        envelope.open(envelope.seal(b"191212121212", AAD)[1:], AAD)
    for junk in (b"", FORMAT, FORMAT + bytes(12), b"x" * 40, bytes(64)):
        with pytest.raises(Unopened):
            envelope.open(junk, AAD)
        assert not envelope.is_legacy(junk, AAD)
