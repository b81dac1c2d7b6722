"""PULL producer side of the reference endpoint: a folder of CSV files seen as audiences.

Each ``<stem>.csv`` directly inside the folder is one audience whose id is the stem. Identifiers and
attributes come from the header; an optional sidecar ``<stem>.json`` adds ``name``, ``description``,
``tags`` and custom ``identifiers`` (column names to treat as identifiers). Row counts and content
hashes need a full read of the file, so they are cached per file and recomputed only when the file's
size or modification time changes. Nothing here knows about HTTP.
"""

from __future__ import annotations

import json
import logging
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from exchange.toolkit.ref_csv import CHUNK_SIZE, is_safe_id, read_header, scan_file, split_columns

log = logging.getLogger(__name__)

#: Fast compression: on loopback the producer's CPU, not the bytes on the wire, limits throughput.
GZIP_LEVEL = 1
VERSION_LENGTH = 32


@dataclass(frozen=True)
class AudienceFile:
    """Metadata of one audience file, in the shape of the protocol's listing (SPEC §5.1)."""

    id: str
    path: Path
    name: str
    description: str
    identifiers: list[str]
    attributes: list[str]
    size: int
    updated_at: str
    version: str
    tags: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "identifiers": self.identifiers,
            "attributes": self.attributes,
            "size": self.size,
            "updated_at": self.updated_at,
            "version": self.version,
            "tags": self.tags,
        }


@dataclass(frozen=True)
class _Scan:
    stamp: tuple[int, int]
    header: list[str]
    rows: int
    version: str


class ProducerFolder:
    """Serves the CSV files of ``folder`` as audiences; safe to share between request threads."""

    def __init__(self, folder: Path | str, *, extra_identifiers: Iterable[str] = ()):
        self.folder = Path(folder)
        self.extra_identifiers = tuple(extra_identifiers)
        self._scans: dict[Path, _Scan] = {}
        self._lock = threading.Lock()

    def list(self) -> list[AudienceFile]:
        """Every audience of the folder, sorted by id; files that vanish while listing are skipped."""
        if not self.folder.is_dir():
            return []
        audiences = []
        for path in sorted(self.folder.glob("*.csv")):
            if not is_safe_id(path.stem):
                continue
            try:
                audiences.append(self._describe(path))
            except (FileNotFoundError, UnicodeDecodeError) as exc:
                log.warning("skipping %s: %s", path.name, exc)
        return audiences

    def get(self, audience_id: str) -> AudienceFile | None:
        """The audience with this id, or None (also for ids that could escape the folder)."""
        if not is_safe_id(audience_id):
            return None
        path = self.folder / f"{audience_id}.csv"
        try:
            return self._describe(path) if path.is_file() else None
        except FileNotFoundError:
            return None

    def _describe(self, path: Path) -> AudienceFile:
        stat = path.stat()
        scan = self._scan(path, (stat.st_size, stat.st_mtime_ns))
        sidecar = self._sidecar(path)
        custom = [str(name) for name in sidecar.get("identifiers", []) if isinstance(name, str)]
        identifiers, attributes = split_columns(scan.header, (*self.extra_identifiers, *custom))
        updated = datetime.fromtimestamp(stat.st_mtime, tz=UTC).isoformat(timespec="seconds")
        return AudienceFile(
            id=path.stem,
            path=path,
            name=str(sidecar.get("name") or path.stem.replace("_", " ").capitalize()),
            description=str(sidecar.get("description") or ""),
            identifiers=identifiers,
            attributes=attributes,
            size=scan.rows,
            updated_at=updated.replace("+00:00", "Z"),
            version=scan.version,
            tags=[str(tag) for tag in sidecar.get("tags", []) if isinstance(tag, str | int)],
        )

    def _scan(self, path: Path, stamp: tuple[int, int]) -> _Scan:
        with self._lock:
            cached = self._scans.get(path)
        if cached is not None and cached.stamp == stamp:
            return cached
        # Scanning happens outside the lock: a large file must not stall listings of the others.
        rows, digest = scan_file(path)
        scan = _Scan(stamp=stamp, header=read_header(path), rows=rows, version=digest[:VERSION_LENGTH])
        with self._lock:
            self._scans[path] = scan
        return scan

    @staticmethod
    def _sidecar(path: Path) -> dict:
        sidecar = path.with_suffix(".json")
        if not sidecar.is_file():
            return {}
        try:
            data = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable sidecar %s: %s", sidecar.name, exc)
            return {}
        return data if isinstance(data, dict) else {}


def iter_file(path: Path, *, gzip: bool = False) -> Iterator[bytes]:
    """Stream a file's bytes in chunks, gzip-compressed on the fly when asked; never reads it whole."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS) if gzip else None
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            if compressor is None:
                yield chunk
            elif out := compressor.compress(chunk):
                yield out
    if compressor is not None:
        yield compressor.flush()
