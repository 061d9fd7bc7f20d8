"""A sealer's chunks until they are stored: in memory while few, then in an anonymous
temporary file, read back in order; in memory again whenever the file fails."""

from __future__ import annotations

import gc
import io
import logging
import tempfile
from pathlib import Path
from typing import IO, Any

import pytest

from gateway.collect import spill
from gateway.collect.sealing import Texts
from gateway.collect.spill import SealedChunks

BODIES = [bytes([n]) * (30 + n) for n in range(12)]


def test_few_chunks_stay_in_memory(made_files: list[IO[bytes]]) -> None:
    chunks = SealedChunks(spill_bytes=sum(map(len, BODIES)))
    for body in BODIES:
        chunks.append(body)
    assert not chunks.spilled
    assert made_files == []
    assert list(chunks) == BODIES
    assert len(chunks) == len(BODIES)


def test_chunks_past_the_threshold_are_read_back_from_a_file_in_order(
    made_files: list[IO[bytes]],
) -> None:
    chunks = SealedChunks(spill_bytes=100)
    for body in BODIES:
        chunks.append(body)
    assert chunks.spilled
    assert len(made_files) == 1
    made_files[0].seek(0)
    assert made_files[0].read() == b"".join(BODIES)  # held there, not in memory
    assert len(chunks) == len(BODIES)
    assert list(chunks) == BODIES
    assert list(chunks) == BODIES  # read again (a write tried again reads them again)
    # Two readings interleaved each get every chunk in order.
    assert list(zip(chunks, chunks, strict=True)) == list(zip(BODIES, BODIES, strict=True))


def test_closing_lets_the_file_go_and_so_does_letting_go_of_the_chunks(
    made_files: list[IO[bytes]],
) -> None:
    closed = SealedChunks(spill_bytes=10)
    dropped = SealedChunks(spill_bytes=10)
    for body in BODIES:
        closed.append(body)
        dropped.append(body)
    closed.close()
    assert made_files[0].closed
    assert list(closed) == []
    del dropped  # never closed: closed when collected, without a ResourceWarning
    gc.collect()
    assert made_files[1].closed


def test_without_a_temporary_file_the_chunks_stay_in_memory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "absent"))
    chunks = SealedChunks(spill_bytes=100)
    with caplog.at_level(logging.WARNING, logger=spill.__name__):
        for body in BODIES:
            chunks.append(body)
    assert not chunks.spilled
    assert list(chunks) == BODIES
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "sealed chunks kept in memory"
    ]


class _FullDisk(io.BytesIO):
    """A file that takes ``room`` writes, then fails as a full disk does: an error, or
    (unbuffered) a write of less than it was given."""

    def __init__(self, room: int, short: bool) -> None:
        super().__init__()
        self.room = room
        self.short = short

    def write(self, data: Any) -> int:
        if self.room == 0:
            if self.short:
                return super().write(bytes(data)[:3])
            raise OSError(28, "No space left on device")
        self.room -= 1
        return super().write(data)


@pytest.mark.parametrize("short", [False, True], ids=["error", "short-write"])
def test_a_file_that_fails_gives_its_chunks_back_to_memory(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, short: bool
) -> None:
    files: list[_FullDisk] = []

    def full_disk(**_options: Any) -> _FullDisk:
        files.append(_FullDisk(room=6, short=short))
        return files[-1]

    monkeypatch.setattr(tempfile, "TemporaryFile", full_disk)
    chunks = SealedChunks(spill_bytes=100)
    with caplog.at_level(logging.WARNING, logger=spill.__name__):
        for body in BODIES:
            chunks.append(body)
    assert len(files) == 1  # tried once: the rest stays in memory
    assert files[0].closed
    assert not chunks.spilled
    assert list(chunks) == BODIES
    assert len(caplog.records) == 1


def test_texts_are_read_back_in_order_merged_by_runs_and_a_newline_is_refused() -> None:
    texts = Texts()
    texts.extend(["a", "b.c"])
    texts.extend([])
    texts.extend(["d-1"])
    assert list(texts) == ["a", "b.c", "d-1"]
    assert len(texts) == 3
    with pytest.raises(ValueError, match="newline"):
        texts.extend(["e", "f\ng"])
    assert list(texts) == ["a", "b.c", "d-1"]
    texts.extend(["0", "b", "zz"])
    assert list(texts.merged()) == ["0", "a", "b", "b.c", "d-1", "zz"]  # runs merged
