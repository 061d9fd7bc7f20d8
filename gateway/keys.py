"""Every key the gateway derives from a configured secret: one per purpose.

A purpose's key is HKDF-SHA256 (RFC 5869) of the secret, without salt, with the
purpose's label as ``info``, 32 bytes long (an AES-256 key). One secret so gives each
purpose its own key, and knowing one purpose's key tells nothing of another's. A new
purpose gets a new label in :class:`Purpose`; a label is never reused for something else.

The unified patient id is not a derived key: it is an HMAC of the identity number under
``id_key`` itself (:mod:`gateway.access.persons`), and must never change.

Before HKDF, the person index and the record cache used SHA-256 of a label and
``data_key``. :func:`legacy_key` still makes those keys, only so that what was sealed
under them stays readable (see :mod:`gateway.envelope`); nothing new is sealed with them.
"""

from __future__ import annotations

import hashlib
from enum import Enum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: Bytes in every derived key.
KEY_BYTES = 32


class Purpose(bytes, Enum):
    """What a key is for; its value is the HKDF ``info``."""

    #: The person index's encrypted identity numbers (from ``data_key``).
    PERSON_INDEX = b"samlad person index v1"
    #: The record cache's chunks (from ``data_key``). The label names the chunk format:
    #: a new format gets a new label, and chunks of the old one then do not open and are
    #: fetched again.
    RECORD_CACHE = b"samlad record cache v2"
    #: Paging cursors (from the key given to the codec). Older than this module, and
    #: unchanged so that cursors already handed out keep opening.
    PAGING_CURSOR = b"samlad paging cursor v1\x00"
    #: The record owner index's hashes of resource ids (from ``data_key``).
    RECORD_OWNER = b"samlad record owner v1"
    #: Bulk Data export files (from ``data_key``).
    BULK_EXPORT = b"samlad bulk export v1"
    #: The header values a subscription sends to its endpoint (from ``data_key``).
    SUBSCRIPTION_HEADERS = b"samlad subscription headers v1"
    #: A person's e-mail address and webhook URL for notices (from ``data_key``).
    NOTICE_CONTACTS = b"samlad notice contacts v1"
    #: What a person reports themselves (from ``data_key``).
    OWN_DATA = b"samlad own data v1"
    #: The writes waiting in the outbox for the system that owns them (from ``data_key``).
    WRITE_OUTBOX = b"samlad write outbox v1"


#: The labels of the SHA-256 derivation before HKDF, by purpose.
_LEGACY_LABELS = {
    Purpose.PERSON_INDEX: b"samlad-person-index:",
    Purpose.RECORD_CACHE: b"samlad-record-cache-v2:",
}


def derive_key(secret: str | bytes, purpose: Purpose) -> bytes:
    """The key for ``purpose`` made from ``secret`` (text is taken as UTF-8)."""
    material = secret.encode() if isinstance(secret, str) else secret
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose.value)
    return hkdf.derive(material)


def legacy_key(secret: str, purpose: Purpose) -> bytes:
    """The key ``purpose`` had before HKDF: for reading what was sealed under it, only.

    Raises ``ValueError`` for a purpose that never had one.
    """
    label = _LEGACY_LABELS.get(purpose)
    if label is None:
        raise ValueError(f"{purpose.name} has no earlier key")
    return hashlib.sha256(label + secret.encode()).digest()
