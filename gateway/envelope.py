"""The AES-GCM envelope of what the gateway stores encrypted: the person index's identity
numbers and the record cache's chunks.

    FORMAT (0x01) | nonce (12 bytes) | AES-256-GCM(plain, aad) with its 16-byte tag

under the purpose's key (:func:`gateway.keys.derive_key`). The associated data ties a
ciphertext to its row, so one moved to another row does not open.

Before the format byte, rows were ``nonce | AES-GCM`` under the purpose's earlier key
(:func:`gateway.keys.legacy_key`), and an envelope given that key opens them still. Their
nonce is random, so one in 256 of them begins with the format byte too: the byte only
says which key to try first, and the GCM tag decides. A ciphertext that begins with it but
does not open under the current key is tried once more as an earlier row; one that does
not begin with it is only an earlier row. A wrong guess cannot open to wrong plain text:
without the right key and row the tag does not match.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: The first byte of everything sealed under a purpose's HKDF key.
FORMAT = b"\x01"
_NONCE_BYTES = 12


class Unopened(Exception):
    """Sealed under another key or for another row, altered, or no envelope at all."""


class Envelope:
    """Seals under ``key``; opens what it sealed, and with ``legacy_key`` what was sealed
    before the format byte."""

    def __init__(self, key: bytes, legacy_key: bytes | None = None) -> None:
        self._aead = AESGCM(key)
        self._legacy = None if legacy_key is None else AESGCM(legacy_key)

    def seal(self, plain: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return FORMAT + nonce + self._aead.encrypt(nonce, plain, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        """The plain text of ``sealed``; raises :class:`Unopened` when it does not open."""
        plain = self._open_current(sealed, aad)
        if plain is None:
            plain = self._open_legacy(sealed, aad)
        if plain is None:
            raise Unopened("the ciphertext does not open")
        return plain

    def is_legacy(self, sealed: bytes, aad: bytes) -> bool:
        """Whether ``sealed`` opens only as a row sealed before the format byte: worth
        sealing again."""
        return (
            self._open_current(sealed, aad) is None and self._open_legacy(sealed, aad) is not None
        )

    def _open_current(self, sealed: bytes, aad: bytes) -> bytes | None:
        if sealed[:1] != FORMAT:
            return None
        return _decrypt(self._aead, sealed[1:], aad)

    def _open_legacy(self, sealed: bytes, aad: bytes) -> bytes | None:
        return None if self._legacy is None else _decrypt(self._legacy, sealed, aad)


def _decrypt(aead: AESGCM, nonce_and_ciphertext: bytes, aad: bytes) -> bytes | None:
    nonce, ciphertext = nonce_and_ciphertext[:_NONCE_BYTES], nonce_and_ciphertext[_NONCE_BYTES:]
    if len(nonce) < _NONCE_BYTES:
        return None
    try:
        return aead.decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        return None
