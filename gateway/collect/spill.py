"""A sealer's chunks until they are stored: in memory while they are few, then in an
anonymous temporary file, so that a huge record's answer does not stay in the worker's
memory while the source is still paging.

What is written there is what the cache stores: chunks already compressed and encrypted
(:mod:`gateway.collect.sealing`). The file has no name (it is unlinked as it is made), is
readable by the process's user only, and is closed once the chunks are stored or let go;
the operating system removes it with the process whatever happens. Where no temporary
file can be made or written (``TMPDIR`` read-only or full), the chunks stay in memory, as
before there was a file.
"""

from __future__ import annotations

import logging
import tempfile
import weakref
from collections.abc import Iterator
from typing import IO

log = logging.getLogger(__name__)

#: Bytes of sealed chunks one sealer holds in memory before it moves them to a file:
#: about 5,000 resources' worth, so an ordinary record never touches the disk.
SPILL_BYTES = 1 << 20


class SealedChunks:
    """Sealed chunks in order: appended as they are sealed, read back (any number of
    times) when they are stored."""

    def __init__(self, spill_bytes: int | None = None) -> None:
        self._spill_bytes: float = SPILL_BYTES if spill_bytes is None else spill_bytes
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._file: IO[bytes] | None = None
        #: Each chunk's (offset, length) in the file.
        self._spans: list[tuple[int, int]] = []
        self._end = 0
        self._close: weakref.finalize[[], SealedChunks] | None = None

    @property
    def spilled(self) -> bool:
        """Whether the chunks are in the file (else in memory)."""
        return self._file is not None

    def append(self, body: bytes) -> None:
        if self._file is None:
            self._held.append(body)
            self._held_bytes += len(body)
            if self._held_bytes > self._spill_bytes:
                self._spill()
            return
        try:
            self._write(body)
        except OSError as exc:
            log.warning("sealed chunks kept in memory: the temporary file failed (%s)", exc)
            self._unspill()
            self._held.append(body)

    def _spill(self) -> None:
        try:
            # Kept open beyond this call: closed by close(), or when this is let go.
            # Unbuffered: a write that fails (a full disk) fails here, not at a later seek.
            self._file = tempfile.TemporaryFile(buffering=0)  # noqa: SIM115
            self._close = weakref.finalize(self, self._file.close)
            for body in self._held:
                self._write(body)
        except OSError as exc:
            log.warning("sealed chunks kept in memory: no temporary file (%s)", exc)
            self._unspill()
            return
        self._held, self._held_bytes = [], 0

    def _write(self, body: bytes) -> None:
        assert self._file is not None
        self._file.seek(self._end)
        if self._file.write(body) != len(body):
            raise OSError("a short write to the temporary file")
        self._spans.append((self._end, len(body)))
        self._end += len(body)

    def _unspill(self) -> None:
        """Back to memory: what the file holds (if anything) read back, the file closed."""
        if self._file is not None:
            if not self._held:
                self._held = list(self._read())
            self.close()
        self._spill_bytes = float("inf")

    def _read(self) -> Iterator[bytes]:
        file = self._file
        assert file is not None
        for offset, length in self._spans:
            file.seek(offset)  # each read seeks: two readings may be interleaved
            yield file.read(length)

    def __len__(self) -> int:
        return len(self._spans) if self._file is not None else len(self._held)

    def __iter__(self) -> Iterator[bytes]:
        if self._file is None:
            return iter(self._held)
        return self._read()

    def close(self) -> None:
        """Let the file go (the chunks with it); memory is let go with this object."""
        if self._close is not None:
            self._close()
        self._file, self._close, self._spans, self._end = None, None, [], 0
