"""PUSH consumer side of the reference endpoint: received audience data applied to a folder.

``<folder>/<safe id>.csv`` holds the current members of destination audience ``id``:

- ``add`` upserts: a received row replaces the columns it carries in every stored row with the same
  key (the key being the received data's identifier columns); unknown keys are appended.
- ``remove`` deletes every stored row whose key matches a received row.
- ``replace`` (in parts ``n/N``) streams the parts into a hidden staging file, announced by part 1 and
  renamed over the audience file only by part N, so the old file stays visible until then. Within a
  replace the first row of a key wins and later duplicates are dropped (still counted as accepted).
- When the received columns differ from the stored ones the file is rewritten with the union.

Memory: the received data of one add/remove request is held in a dict (bounded by the sender's part
size), and the *keys* (one compact string per member, not the rows) of each stored audience are
cached so that an add of new members with the stored header only appends to the file; a replace
keeps only the keys of the staged rows. That is roughly 100-150 bytes per member: about 250 MB for a
1M-member audience, acceptable for a reference endpoint, not for a production store. Every other
change rewrites the file by streaming it through a temporary file. Writes to one audience are
serialised by a per-audience lock; the idempotency records live in memory (bounded), so a restart of
the reference endpoint forgets them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from exchange.toolkit.ref_csv import IDENTIFIER_NAMES, CsvFormatError, CsvRows, safe_file_stem, split_columns
from exchange.toolkit.ref_members import (
    Key,
    Layout,
    Tally,
    file_stamp,
    gc_paused,
    iter_stored,
    read_stored_header,
    union_header,
    valid_rows,
    write_atomically,
    write_rows,
)
from exchange.toolkit.ref_staging import StagedReplace

MODES = ("add", "replace", "remove")


def _unchanged(row: list[str]) -> list[str]:
    return row


class PartOrderError(ValueError):
    """A part of a replace arrived without the parts before it."""


@dataclass(frozen=True)
class PushResult:
    """What one data request did; ``to_json`` is the protocol's answer body (SPEC §5.2)."""

    accepted: int
    rejected: int
    committed: bool = True

    def to_json(self) -> dict:
        return {"accepted": self.accepted, "rejected": self.rejected}


@dataclass
class _AudienceState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: set[Key] | None = None
    keys_layout: Layout | None = None
    keys_stamp: tuple[int, int] | None = None
    staging: StagedReplace | None = None


class ConsumerFolder:
    """Applies pushed audience data to member files in ``folder``; safe across request threads."""

    def __init__(
        self, folder: Path | str, *, extra_identifiers: Iterable[str] = (), idempotency_capacity: int = 10_000
    ):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.extra_identifiers = tuple(extra_identifiers)
        self._states: dict[str, _AudienceState] = {}
        self._states_lock = threading.Lock()
        self._done: OrderedDict[tuple[str, str, str], PushResult] = OrderedDict()
        self._capacity = idempotency_capacity
        StagedReplace.remove_leftovers(self.folder)

    def path_for(self, audience_id: str) -> Path:
        """The member file of destination audience ``audience_id``."""
        return self.folder / f"{safe_file_stem(audience_id)}.csv"

    def receive(
        self,
        audience_id: str,
        mode: str,
        chunks: Iterable[bytes],
        *,
        gzip: bool = False,
        part: tuple[int, int] | None = None,
        idempotency_key: str | None = None,
    ) -> PushResult:
        """Apply one data request; raises CsvFormatError, PartOrderError or ValueError (bad mode).

        A request repeating an ``Idempotency-Key`` already applied for the same audience and part
        gets the first answer again without touching the data, so a retry never applies twice.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        stem = safe_file_stem(audience_id)
        record = (stem, idempotency_key, f"{mode}:{part}") if idempotency_key else None
        state = self._state(stem)
        with state.lock, gc_paused():
            if record is not None and record in self._done:
                return self._done[record]
            rows = CsvRows(chunks, gzip=gzip)
            if not split_columns(rows.header, self.extra_identifiers)[0]:
                raise CsvFormatError(
                    f"the header names no identifier column (known: {', '.join(IDENTIFIER_NAMES)})"
                )
            target = self.folder / f"{stem}.csv"
            if mode == "replace":
                result = self._replace(state, target, rows, part or (1, 1))
            elif mode == "add":
                result = self._add(state, target, rows)
            else:
                result = self._remove(state, target, rows)
            if record is not None:
                self._remember(record, result)
            return result

    def _state(self, stem: str) -> _AudienceState:
        with self._states_lock:
            return self._states.setdefault(stem, _AudienceState())

    def _remember(self, record: tuple[str, str, str], result: PushResult) -> None:
        with self._states_lock:
            self._done[record] = result
            while len(self._done) > self._capacity:
                self._done.popitem(last=False)

    def _cached_keys(self, state: _AudienceState, target: Path, layout: Layout) -> set[Key] | None:
        if state.keys is None or state.keys_layout != layout or state.keys_stamp != file_stamp(target):
            return None
        return state.keys

    def _cache_keys(self, state: _AudienceState, target: Path, layout: Layout, keys: set[Key] | None) -> None:
        state.keys, state.keys_layout = keys, layout
        state.keys_stamp = file_stamp(target) if keys is not None else None

    def _add(self, state: _AudienceState, target: Path, rows: CsvRows) -> PushResult:
        incoming_layout = Layout.of(rows.header, self.extra_identifiers)
        tally = Tally()
        incoming: dict[Key, list[str]] = {}
        for key, row in valid_rows(rows, incoming_layout, tally):
            incoming[key] = row
        stored_header = read_stored_header(target)
        if stored_header is None:
            write_atomically(target, rows.header, incoming.values())
            self._cache_keys(state, target, incoming_layout, set(incoming))
            return PushResult(tally.accepted, tally.rejected)

        stored_layout = Layout.of(stored_header, self.extra_identifiers)
        keys = self._cached_keys(state, target, stored_layout)
        if stored_header == rows.header and keys is not None and keys.isdisjoint(incoming):
            # Only new members with the stored columns: appending is enough.
            with target.open("a", encoding="utf-8", newline="") as handle:
                write_rows(handle, incoming.values())
            keys.update(incoming)
            self._cache_keys(state, target, stored_layout, keys)
            return PushResult(tally.accepted, tally.rejected)

        header = union_header(stored_header, rows.header)
        layout = Layout.of(header, self.extra_identifiers)
        project = layout.projector(incoming_layout.key_columns)
        to_stored = stored_layout.mapper(header) or _unchanged
        to_union = incoming_layout.mapper(header) or _unchanged
        overrides = [header.index(column) for column in rows.header]
        matched: set[Key] = set()
        new_keys: set[Key] = set()

        def merged():
            for stored in iter_stored(target, len(stored_header)):
                row = to_stored(stored)
                member = project(row)
                received = incoming.get(member)
                if received is not None:
                    matched.add(member)
                    relaid = to_union(received)
                    row = list(row)
                    for position in overrides:
                        row[position] = relaid[position]
                new_keys.add(layout.key(row))
                yield row
            for key, received in incoming.items():
                if key not in matched:
                    row = to_union(received)
                    new_keys.add(layout.key(row))
                    yield row

        write_atomically(target, header, merged())
        self._cache_keys(state, target, layout, new_keys)
        return PushResult(tally.accepted, tally.rejected)

    def _remove(self, state: _AudienceState, target: Path, rows: CsvRows) -> PushResult:
        incoming_layout = Layout.of(rows.header, self.extra_identifiers)
        tally = Tally()
        doomed = {key for key, _row in valid_rows(rows, incoming_layout, tally)}
        stored_header = read_stored_header(target)
        if stored_header is None or not doomed:
            return PushResult(tally.accepted, tally.rejected)
        layout = Layout.of(stored_header, self.extra_identifiers)
        project = layout.projector(incoming_layout.key_columns)
        kept: set[Key] = set()
        removed = 0

        def survivors():
            nonlocal removed
            for row in iter_stored(target, len(stored_header)):
                if project(row) in doomed:
                    removed += 1
                    continue
                kept.add(layout.key(row))
                yield row

        write_atomically(target, stored_header, survivors())
        self._cache_keys(state, target, layout, kept)
        return PushResult(tally.accepted, tally.rejected)

    def _replace(
        self, state: _AudienceState, target: Path, rows: CsvRows, part: tuple[int, int]
    ) -> PushResult:
        number, total = part
        if number == 1:
            if state.staging is not None:
                state.staging.discard()
            state.staging = StagedReplace(target, total, self.extra_identifiers)
        elif state.staging is None or not state.staging.accepts(number):
            expected = 1 if state.staging is None else state.staging.next_part
            raise PartOrderError(f"part {number}/{total} of a replace arrived, expected part {expected}")
        staging = state.staging
        tally = staging.append(number, rows)
        if number < total:
            return PushResult(tally.accepted, tally.rejected, committed=False)
        layout, keys = staging.commit()
        state.staging = None
        self._cache_keys(state, target, layout, keys)
        return PushResult(tally.accepted, tally.rejected)
