"""The payload log's disk spool: CloudEvent batches the collector could not take, kept in
order until it can.

Each batch is one file, ``<sequence>-<events>.json`` (the sequence zero-padded, so names
sort in arrival order), written to a temporary name and renamed, so a crash leaves a whole
batch or none. The spool survives a restart: a new sender picks up the files left. It is
bounded by ``max_bytes``; a batch that does not fit is refused (the sender counts it
dropped and logs it) and ``freightml_serving_spool_bytes`` against
``freightml_serving_spool_limit_bytes`` raises ``FreightPayloadSpoolFilling`` first.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from freightml.serving.metrics import SPOOL_BYTES, SPOOL_LIMIT_BYTES

DEFAULT_SPOOL_BYTES = 256 * 1024 * 1024
_NAME = re.compile(r"^(\d{16})-(\d+)\.json$")


class EventSpool:
    """Batches on disk, oldest first (module docstring)."""

    def __init__(
        self, directory: str | Path, max_bytes: int = DEFAULT_SPOOL_BYTES, *, name: str = ""
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"the spool's max_bytes must be >= 1, got {max_bytes}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._files: list[tuple[Path, int, int]] = []  # (path, events, bytes), oldest first
        for path in sorted(self.directory.iterdir()):
            match = _NAME.match(path.name)
            if match:
                self._files.append((path, int(match.group(2)), path.stat().st_size))
            elif path.name.endswith(".tmp"):  # a write cut short by a crash: never renamed
                path.unlink(missing_ok=True)
        last = self._files[-1][0].name if self._files else None
        self._next = int(last[:16]) + 1 if last else 0
        self.bytes = sum(size for _, _, size in self._files)
        self._bytes_gauge = SPOOL_BYTES.labels(name)
        SPOOL_LIMIT_BYTES.labels(name).set(max_bytes)
        self._bytes_gauge.set(self.bytes)

    def __len__(self) -> int:
        return len(self._files)

    @property
    def events(self) -> int:
        """Events waiting in the spool."""
        return sum(n for _, n, _ in self._files)

    def put(self, payload: bytes, n: int) -> bool:
        """Append one batch of ``n`` events; False (nothing written) when it does not fit."""
        if self.bytes + len(payload) > self.max_bytes:
            return False
        path = self.directory / f"{self._next:016d}-{n}.json"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        tmp.rename(path)
        self._next += 1
        self._files.append((path, n, len(payload)))
        self.bytes += len(payload)
        self._bytes_gauge.set(self.bytes)
        return True

    def oldest(self) -> tuple[bytes, int] | None:
        """The oldest batch and its number of events, None when the spool is empty."""
        if not self._files:
            return None
        path, n, _ = self._files[0]
        return path.read_bytes(), n

    def pop(self) -> None:
        """Remove the oldest batch (delivered, or refused for good by the collector)."""
        path, _, size = self._files.pop(0)
        path.unlink(missing_ok=True)
        self.bytes -= size
        self._bytes_gauge.set(self.bytes)
