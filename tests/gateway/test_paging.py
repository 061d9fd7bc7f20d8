"""Paging cursors: sealed, bound to one principal, short-lived; pages without gaps."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given
from hypothesis import strategies as st

from gateway.answer.paging import (
    DEFAULT_TTL,
    MAX_TOKEN_LENGTH,
    PAGE_PARAM,
    ChangedResults,
    ExpiredCursor,
    InvalidCursor,
    PageCursorCodec,
    PageState,
    check_snapshot,
    page,
    page_links,
    snapshot_of,
)
from gateway.answer.search import apply, parse_search
from gateway.errors import BadRequest

KEY = b"k" * 32
PATIENT_ID = "p-6f1c2a9e0b"
BASE = "https://samlad.test.example/fhir"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
PRINCIPAL = "fp-alice"


class FakeClock:
    def __init__(self, now: float = 1_780_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def state(offset: int = 0, *, params: tuple[tuple[str, str], ...] | None = None) -> PageState:
    return PageState(
        search="Observation",
        params=params
        if params is not None
        else (("patient", PATIENT_ID), ("code", "http://loinc.org|718-7"), ("date", "ge2026-05")),
        offset=offset,
        count=50,
        snapshot=snapshot_of(["o1", "o2"]),
        bound_to=PRINCIPAL,
    )


def test_round_trip() -> None:
    codec = PageCursorCodec(KEY)
    original = state(100)
    assert codec.decode(codec.encode(original), bound_to=PRINCIPAL) == original


def test_every_changed_character_is_refused() -> None:
    codec = PageCursorCodec(KEY)
    token = codec.encode(state())
    for index, char in enumerate(token):
        for other in {
            ALPHABET[(ALPHABET.index(char) + 1) % 64],
            ALPHABET[ALPHABET.index(char) ^ 1],
        }:
            tampered = token[:index] + other + token[index + 1 :]
            with pytest.raises(InvalidCursor):
                codec.decode(tampered, bound_to=PRINCIPAL)


def test_every_flipped_bit_of_the_bytes_is_refused() -> None:
    codec = PageCursorCodec(KEY)
    raw = bytearray(base64.urlsafe_b64decode(codec.encode(state()) + "=="))
    for index in range(len(raw)):
        for bit in (0x01, 0x80):
            flipped = bytearray(raw)
            flipped[index] ^= bit
            token = base64.urlsafe_b64encode(bytes(flipped)).rstrip(b"=").decode()
            with pytest.raises(InvalidCursor):
                codec.decode(token, bound_to=PRINCIPAL)


def test_truncated_extended_and_junk_tokens_are_refused() -> None:
    codec = PageCursorCodec(KEY)
    token = codec.encode(state())
    for cut in range(len(token)):
        with pytest.raises(InvalidCursor):
            codec.decode(token[:cut], bound_to=PRINCIPAL)
    for junk in (token + "A", token + "=", token + "\n", " " + token, "x" * (MAX_TOKEN_LENGTH + 1)):
        with pytest.raises(InvalidCursor):
            codec.decode(junk, bound_to=PRINCIPAL)


def test_another_key_is_refused() -> None:
    token = PageCursorCodec(KEY).encode(state())
    with pytest.raises(InvalidCursor):
        PageCursorCodec(b"another key of 32 bytes.........").decode(token, bound_to=PRINCIPAL)


def test_another_principal_is_refused() -> None:
    codec = PageCursorCodec(KEY)
    token = codec.encode(state())
    with pytest.raises(InvalidCursor):
        codec.decode(token, bound_to="fp-mallory")
    with pytest.raises(InvalidCursor):
        codec.decode(token, bound_to="")


def test_expiry_with_a_fake_clock() -> None:
    clock = FakeClock()
    codec = PageCursorCodec(KEY, clock=clock)
    token = codec.encode(state())
    clock.now += DEFAULT_TTL - 1
    assert codec.decode(token, bound_to=PRINCIPAL).offset == 0
    clock.now += 1
    with pytest.raises(ExpiredCursor) as caught:
        codec.decode(token, bound_to=PRINCIPAL)
    assert caught.value.status == 410
    assert token not in caught.value.message


def test_custom_ttl() -> None:
    clock = FakeClock()
    codec = PageCursorCodec(KEY, ttl=60, clock=clock)
    token = codec.encode(state())
    clock.now += 61
    with pytest.raises(ExpiredCursor):
        codec.decode(token, bound_to=PRINCIPAL)


def test_errors_are_gateway_errors_with_safe_messages() -> None:
    codec = PageCursorCodec(KEY)
    with pytest.raises(InvalidCursor) as caught:
        codec.decode("garbage", bound_to=PRINCIPAL)
    assert isinstance(caught.value, BadRequest)
    assert caught.value.status == 400
    assert "garbage" not in caught.value.message


def test_nothing_readable_in_the_token() -> None:
    codec = PageCursorCodec(KEY)
    secret_values = [PATIENT_ID, "718-7", "loinc", "ge2026-05", "Observation", "patient", PRINCIPAL]
    token = codec.encode(state())
    raw = base64.urlsafe_b64decode(token + "==")
    for value in secret_values:
        assert value not in token
        assert value.encode() not in raw
        assert value.lower().encode() not in raw.lower()


def test_tokens_differ_each_time_and_hide_value_lengths() -> None:
    codec = PageCursorCodec(KEY, clock=FakeClock())  # a fixed expiry: only the values vary
    assert codec.encode(state()) != codec.encode(state())
    # Padded to 64-byte blocks: values of 64 consecutive lengths make at most two lengths
    # of token (the real clock's expiry, printed in more or fewer digits, made a fixed
    # pair of values straddle a block now and then).
    lengths = {
        len(codec.encode(state(params=(("patient", PATIENT_ID), ("code", "x" * n)))))
        for n in range(1, 65)
    }
    assert len(lengths) <= 2


def test_a_cursor_sealed_as_before_still_opens() -> None:
    """A cursor made by hand the way the codec has always made them (AES-GCM under
    HKDF-SHA256 of its key, info ``samlad paging cursor v1`` and a zero byte) opens."""
    clock = FakeClock()
    label = b"samlad paging cursor v1\x00"
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(KEY)
    expected = state(100)
    payload = {
        "s": expected.search,
        "p": [list(pair) for pair in expected.params],
        "o": expected.offset,
        "c": expected.count,
        "h": expected.snapshot,
        "x": clock.now + 60,
    }
    nonce = bytes(12)
    sealed = AESGCM(key).encrypt(nonce, orjson.dumps(payload), label + PRINCIPAL.encode())
    token = base64.urlsafe_b64encode(b"\x01" + nonce + sealed).rstrip(b"=").decode()
    codec = PageCursorCodec(KEY, clock=clock)
    assert codec.decode(token, bound_to=PRINCIPAL) == expected


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        PageCursorCodec(b"short")


def test_snapshot_detects_a_changed_result_set() -> None:
    current = state()
    check_snapshot(current, snapshot_of(["o1", "o2"]))
    for changed in (["o2", "o1"], ["o1"], ["o1", "o2", "o3"], ["o1o2"]):
        with pytest.raises(ChangedResults) as caught:
            check_snapshot(current, snapshot_of(changed))
        assert caught.value.status == 410
        assert isinstance(caught.value, ExpiredCursor)


# -- pages -------------------------------------------------------------------------------


@given(items=st.lists(st.integers(), max_size=300), count=st.integers(min_value=1, max_value=60))
def test_pages_cover_the_list_without_gaps_or_duplicates(items: list[int], count: int) -> None:
    collected: list[int] = []
    offset: int | None = 0
    pages = 0
    while offset is not None:
        chunk, offset = page(items, offset, count)
        assert 0 < len(chunk) <= count or items == []
        collected.extend(chunk)
        pages += 1
    assert collected == items
    assert pages == max(1, -(-len(items) // count))


def test_page_refuses_bad_arguments_and_tolerates_a_shrunk_list() -> None:
    with pytest.raises(ValueError, match="offset"):
        page([1], -1, 1)
    with pytest.raises(ValueError, match="count"):
        page([1], 0, 0)
    assert page([1, 2], 10, 5) == ([], None)


def offsets_of(links: list[dict[str, str]], codec: PageCursorCodec) -> dict[str, int]:
    found = {}
    for link in links:
        url = urlsplit(link["url"])
        query = parse_qs(url.query)
        if PAGE_PARAM in query:
            assert f"{url.scheme}://{url.netloc}{url.path}" == BASE
            [token] = query[PAGE_PARAM]
            found[link["relation"]] = codec.decode(token, bound_to=PRINCIPAL).offset
    return found


def test_links_of_a_middle_page() -> None:
    codec = PageCursorCodec(KEY)
    links = page_links(BASE, state(50), codec, total=120)
    assert [link["relation"] for link in links] == ["self", "first", "previous", "next", "last"]
    assert offsets_of(links, codec) == {
        "self": 50, "first": 0, "previous": 0, "next": 100, "last": 100
    }  # fmt: skip


def test_links_of_the_first_and_last_pages() -> None:
    codec = PageCursorCodec(KEY)
    self_url = f"{BASE}/Observation?patient={PATIENT_ID}"
    first = page_links(BASE, state(0), codec, total=120, self_url=self_url)
    assert first[0] == {"relation": "self", "url": self_url}
    assert offsets_of(first, codec) == {"first": 0, "next": 50, "last": 100}
    last = page_links(BASE, state(100), codec, total=120)
    assert offsets_of(last, codec) == {"self": 100, "first": 0, "previous": 50, "last": 100}
    empty = page_links(BASE, state(0), codec, total=0)
    assert offsets_of(empty, codec) == {"self": 0, "first": 0, "last": 0}


@given(total=st.integers(min_value=0, max_value=500), count=st.integers(min_value=1, max_value=70))
def test_following_next_links_visits_every_item_once(total: int, count: int) -> None:
    codec = PageCursorCodec(KEY)
    items = list(range(total))
    current = PageState("Observation", (), 0, count, snapshot_of([]), PRINCIPAL)
    seen: list[int] = []
    while True:
        chunk, _ = page(items, current.offset, current.count)
        seen.extend(chunk)
        nexts = [
            link
            for link in page_links(BASE, current, codec, total=total)
            if link["relation"] == "next"
        ]
        if not nexts:
            break
        token = parse_qs(urlsplit(nexts[0]["url"]).query)[PAGE_PARAM][0]
        current = codec.decode(token, bound_to=PRINCIPAL)
    assert seen == items


def test_a_search_resumed_from_its_cursor_continues_where_it_stopped() -> None:
    record = [
        {
            "resourceType": "Observation",
            "id": f"o{i:03d}",
            "status": "final",
            "effectiveDateTime": f"2026-05-{1 + i % 28:02d}T08:00:00+02:00",
        }
        for i in range(120)
    ]
    params = [
        ("patient", PATIENT_ID),
        ("_sort", "-date"),
        ("_count", "40"),
        ("date", "ge2026-05-03"),
    ]
    spec = parse_search("Observation", params, strict=False)
    results = apply(spec, record)
    codec = PageCursorCodec(KEY)
    first = PageState(
        "Observation", spec.params, 0, spec.count, snapshot_of(r["id"] for r in results), PRINCIPAL
    )
    got, next_offset = page(results, 0, spec.count)
    while next_offset is not None:
        token = codec.encode(first.at(next_offset))
        resumed = codec.decode(token, bound_to=PRINCIPAL)
        # A later page re-reads the record and runs the same search again.
        again = apply(parse_search(resumed.search, list(resumed.params), strict=True), record)
        check_snapshot(resumed, snapshot_of(r["id"] for r in again))
        chunk, next_offset = page(again, resumed.offset, resumed.count)
        got.extend(chunk)
    assert got == results
