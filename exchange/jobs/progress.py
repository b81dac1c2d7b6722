"""A job's resumable state (``Job.progress``) as one typed, versioned record.

Each phase writes its own fields and nothing else — ``fetch`` the source, ``transform`` the output,
``plan`` the operations, the PUSH delivery the parts done, the state machine ``state_since`` — so a
job resumed after a crash skips every phase whose result is recorded and restarts a delivery at the
first part not yet accepted. Stored as JSON with ``"v": 1``; rows written before the version existed
(no ``"v"``, ``_state_since``) are read the same way. The API shows the stored JSON as it is.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..models import Job

VERSION = 1


@dataclass(frozen=True)
class Operation:
    """One planned delivery operation: send the rows of blob ``key`` in ``mode``."""

    mode: str  # add | remove | replace
    key: str
    rows: int

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "key": self.key, "rows": self.rows}


@dataclass(frozen=True)
class JobProgress:
    # the state machine: when the job entered its current state (per-phase timings)
    state_since: str | None = None
    # fetch
    source_key: str | None = None
    source_gzip: bool = False
    awaiting_since: str | None = None  # a PULL producer answered 202 (export in preparation)
    unchanged: bool = False  # the producer answered 304
    # transform
    output_key: str | None = None
    columns: tuple[str, ...] = ()
    output_rows: int = 0
    output_sha256: str | None = None
    key_columns: tuple[str, ...] = ()
    # plan (None: not planned yet)
    ops: tuple[Operation, ...] | None = None
    # PUSH delivery: parts accepted per operation index; whether a consumer answered 202
    done: dict[int, int] = field(default_factory=dict)
    pending_ack: bool = False

    @property
    def planned(self) -> bool:
        return self.ops is not None

    @property
    def operations(self) -> tuple[Operation, ...]:
        return self.ops or ()

    def with_(self, **changes: Any) -> JobProgress:
        return replace(self, **changes)

    # -- persistence ------------------------------------------------------------------------
    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> JobProgress:
        """Read a stored record, version 1 or the unversioned shape before it."""
        data = dict(data or {})
        version = data.get("v", 0)
        if not isinstance(version, int) or version > VERSION:
            raise ValueError(f"job progress version {version!r} is newer than this exchange understands")
        ops = data.get("ops")
        return cls(
            state_since=data.get("state_since", data.get("_state_since")),
            source_key=data.get("source_key"),
            source_gzip=bool(data.get("source_gzip", False)),
            awaiting_since=data.get("awaiting_since"),
            unchanged=bool(data.get("unchanged", False)),
            output_key=data.get("output_key"),
            columns=tuple(data.get("columns") or ()),
            output_rows=int(data.get("output_rows") or 0),
            output_sha256=data.get("output_sha256"),
            key_columns=tuple(data.get("key_columns") or ()),
            ops=None if ops is None else tuple(Operation(o["mode"], o["key"], int(o["rows"])) for o in ops),
            done={int(k): int(v) for k, v in (data.get("done") or {}).items()},
            pending_ack=bool(data.get("pending_ack", False)),
        )

    def to_json(self) -> dict[str, Any]:
        """The stored shape: only fields that are set, so the API shows what the job has done."""
        out: dict[str, Any] = {"v": VERSION}
        if self.state_since:
            out["state_since"] = self.state_since
        if self.source_key:
            out["source_key"], out["source_gzip"] = self.source_key, self.source_gzip
        if self.awaiting_since:
            out["awaiting_since"] = self.awaiting_since
        if self.unchanged:
            out["unchanged"] = True
        if self.columns:
            out["columns"] = list(self.columns)
        if self.output_key:
            out.update(output_key=self.output_key, output_rows=self.output_rows, output_sha256=self.output_sha256,
                       key_columns=list(self.key_columns))
        if self.ops is not None:
            out["ops"] = [op.to_json() for op in self.ops]
            out["done"] = {str(k): v for k, v in sorted(self.done.items())}
        if self.pending_ack:
            out["pending_ack"] = True
        return out


def read_progress(job: Job) -> JobProgress:
    return JobProgress.from_json(job.progress)


def write_progress(job: Job, progress: JobProgress) -> None:
    job.progress = progress.to_json()


def update_progress(job: Job, **changes: Any) -> JobProgress:
    """Set some fields of ``job``'s progress (inside the caller's session) and return the result."""
    progress = read_progress(job).with_(**changes)
    write_progress(job, progress)
    return progress
