"""Shares and jobs as the API and the web interface see them: create, read, list, change, run."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import Conflict, NotFound, ValidationFailed
from ..jobs.destination import Destination
from ..jobs.states import event, transition
from ..models import TERMINAL_STATES, Audience, Endpoint, Job, JobEvent, Share, utcnow
from ..pagination import paginate
from ..transfer.mapping import validate_mapping
from .schedules import describe, next_run_after, validate_schedule

if TYPE_CHECKING:
    from ..runtime import Runtime

RECURRING = {"interval", "cron", "on_new_data"}
M = TypeVar("M", Audience, Endpoint)


# ---------------------------------------------------------------- shares
def get_share(session: Session, account_id: str, share_id: str) -> Share:
    share = session.get(Share, share_id)
    if share is None or share.account_id != account_id:
        raise NotFound("No such share.")
    return share


def _referenced(session: Session, model: type[M], account_id: str, ident: str, field: str) -> M:
    obj = session.get(model, ident)
    if obj is None or obj.account_id != account_id:
        raise ValidationFailed("Unknown reference.", errors={field: ["Not found."]})
    return obj


def _row(session: Session, model: type[M], ident: str) -> M:
    """A row a share refers to (kept by foreign keys, so missing only if deleted concurrently)."""
    obj = session.get(model, ident)
    if obj is None:
        raise NotFound(f"The share's {model.__name__.lower()} no longer exists.")
    return obj


def destination_capabilities(dest: Endpoint) -> dict[str, Any]:
    """What a destination accepts, as the web wizard shows it: identifiers, attributes (None = any), modes."""
    caps = Destination.of(dest)
    return {"identifiers": list(caps.identifiers),
            "attributes": list(caps.attributes) if caps.attributes is not None else None,
            "native_modes": set(caps.native_modes)}


def _validate(session: Session, account_id: str, data: dict[str, Any], aud: Audience, dest: Endpoint) -> None:
    errors: dict[str, list[str]] = {}
    if not (dest.consumer_transport or dest.adapter_type):
        errors["destination_id"] = ["This endpoint is not a consumer."]
    elif dest.status != "active":
        errors["destination_id"] = ["This endpoint is disabled."]
    if aud.status == "gone":
        errors["audience_id"] = ["The producer no longer offers this audience."]
    caps = Destination.of(dest)
    source_columns = aud.data_columns or (list(aud.identifiers or []) + list(aud.attributes or [])) or None
    attributes = list(caps.attributes) if caps.attributes is not None else None
    errors.update(validate_mapping(data["mapping"], source_columns, list(caps.identifiers), attributes))
    mode, delta = data["mode"], data["delta"]
    if delta and mode == "remove":
        errors.setdefault("delta", []).append("Delta applies to add and replace shares, not remove.")
    if mode in ("remove", "replace") and not caps.can_remove:
        errors.setdefault("mode", []).append(f"This destination cannot remove members, so {mode} is impossible.")
    if errors:
        raise ValidationFailed("The share is not valid for this audience and destination.", errors=errors)


def create_share(rt: Runtime, session: Session, account_id: str, data: dict[str, Any]) -> Share:
    aud = _referenced(session, Audience, account_id, data["audience_id"], "audience_id")
    dest = _referenced(session, Endpoint, account_id, data["destination_id"], "destination_id")
    schedule = validate_schedule(data.get("schedule") or {"type": "now"})
    if data.get("delta") is None:
        data["delta"] = schedule["type"] in RECURRING and data["mode"] != "remove"
    _validate(session, account_id, data, aud, dest)
    now = utcnow()
    share = Share(account_id=account_id, audience_id=aud.id, destination_id=dest.id,
                  destination_audience=data.get("destination_audience") or aud.name,
                  mapping=data["mapping"], mode=data["mode"], schedule=schedule, delta=bool(data["delta"]),
                  reject_threshold=data["reject_threshold"], default_country=data.get("default_country"),
                  anchor_at=now)
    share.next_run_at = next_run_after(schedule, now, anchor=now)
    session.add(share)
    session.flush()
    if schedule["type"] == "now":
        job = create_job(session, share, trigger="now")
        share.last_job_id = job.id
    return share


def update_share(rt: Runtime, session: Session, account_id: str, share_id: str,
                 data: dict[str, Any]) -> Share:
    share = get_share(session, account_id, share_id)
    merged = {"mapping": share.mapping, "mode": share.mode, "delta": share.delta, **data}
    aud = _row(session, Audience, share.audience_id)
    dest = _row(session, Endpoint, share.destination_id)
    if "schedule" in data:
        data["schedule"] = validate_schedule(data["schedule"])
    _validate(session, account_id, merged, aud, dest)
    for field, value in data.items():
        setattr(share, field, value)
    if "schedule" in data:
        now = utcnow()
        share.anchor_at = now
        share.next_run_at = next_run_after(share.schedule, now, anchor=now) if share.status == "active" else None
    return share


def set_share_status(session: Session, account_id: str, share_id: str, status: str) -> Share:
    share = get_share(session, account_id, share_id)
    share.status = status
    now = utcnow()
    share.next_run_at = next_run_after(share.schedule, now, anchor=share.anchor_at) if status == "active" else None
    return share


def delete_share(rt: Runtime, session: Session, account_id: str, share_id: str) -> None:
    share = get_share(session, account_id, share_id)
    for job in session.scalars(select(Job).where(Job.share_id == share.id, Job.state.not_in(TERMINAL_STATES))):
        job.cancel_requested = True
        transition(session, job, "cancelled", "share deleted")
    if share.snapshot_key:
        try:
            rt.blobs.delete(share.snapshot_key)
        except Exception:  # noqa: BLE001 - retention removes leftovers
            pass
    session.delete(share)


def share_view(share: Share) -> dict[str, Any]:
    return {c: getattr(share, c) for c in (
        "id", "audience_id", "destination_id", "destination_audience", "mapping", "mode", "schedule", "delta",
        "reject_threshold", "default_country", "status", "next_run_at", "last_job_id", "snapshot_job_id",
        "created_at", "updated_at")} | {"schedule_description": describe(share.schedule)}


def list_shares(session: Session, account_id: str, *, audience_id: str | None = None,
                destination_id: str | None = None, status: str | None = None, page: int = 1,
                page_size: int = 50) -> tuple[list[Share], int]:
    q = select(Share).where(Share.account_id == account_id)
    if audience_id:
        q = q.where(Share.audience_id == audience_id)
    if destination_id:
        q = q.where(Share.destination_id == destination_id)
    if status:
        q = q.where(Share.status == status)
    return paginate(session, q, Share.created_at.desc(), Share.id, page=page, page_size=page_size)


# ---------------------------------------------------------------- jobs
def create_job(session: Session, share: Share, *, trigger: str, scheduled_for: datetime | None = None) -> Job:
    job = Job(account_id=share.account_id, share_id=share.id, trigger=trigger, scheduled_for=scheduled_for,
              mode=share.mode, state="queued")
    session.add(job)
    session.flush()
    event(session, job, f"queued ({trigger})", kind="state")
    share.last_job_id = job.id
    return job


def run_share_now(rt: Runtime, session: Session, account_id: str, share_id: str) -> Job:
    share = get_share(session, account_id, share_id)
    dest = _row(session, Endpoint, share.destination_id)
    if dest.status != "active":
        raise Conflict("The destination endpoint is disabled.")
    return create_job(session, share, trigger="manual")


def trigger_on_new_data(rt: Runtime, session: Session, audience: Audience) -> list[str]:
    shares = session.scalars(select(Share).where(Share.audience_id == audience.id, Share.status == "active"))
    ids = []
    for share in shares:
        if (share.schedule or {}).get("type") == "on_new_data":
            ids.append(create_job(session, share, trigger="on_new_data").id)
    return ids


def get_job(session: Session, account_id: str, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None or job.account_id != account_id:
        raise NotFound("No such job.")
    return job


def job_status(session: Session, account_id: str, job_id: str) -> Any:
    """The job as ``GET /v1/jobs/{id}`` shows it: one row by a Core query, read-only.

    The status route is polled hard while jobs run; a plain row (its columns as attributes, JSON and
    timestamps decoded as the ORM does) skips the identity map and instance state of ``get_job``."""
    t = Job.__table__
    row = session.execute(select(t).where(t.c.id == job_id, t.c.account_id == account_id)).first()
    if row is None:
        raise NotFound("No such job.")
    return row


def list_jobs(session: Session, account_id: str, *, share_id: str | None = None, state: str | None = None,
              since: datetime | None = None, until: datetime | None = None, page: int = 1,
              page_size: int = 50) -> tuple[list[Job], int]:
    q = select(Job).where(Job.account_id == account_id)
    if share_id:
        q = q.where(Job.share_id == share_id)
    if state:
        q = q.where(Job.state == state)
    if since:
        q = q.where(Job.created_at >= since)
    if until:
        q = q.where(Job.created_at < until)
    return paginate(session, q, Job.created_at.desc(), Job.id, page=page, page_size=page_size)


def job_events(session: Session, account_id: str, job_id: str) -> list[JobEvent]:
    get_job(session, account_id, job_id)
    return list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)))


def cancel_job(session: Session, account_id: str, job_id: str) -> Job:
    job = get_job(session, account_id, job_id)
    if job.state in TERMINAL_STATES:
        raise Conflict(f"The job already ended ({job.state}).")
    job.cancel_requested = True
    if job.state in ("queued", "awaiting_consumer", "awaiting_source"):
        transition(session, job, "cancelled", "cancelled by user")
    else:
        event(session, job, "cancellation requested; the job stops at the next safe point")
    return job
