"""Webhook pages: the account's subscribers with their health, each one's delivery log, redelivery."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for

from ..api.context import db
from ..webhooks import service
from .blueprint import web


@web.route("/webhooks")
def webhooks_list():
    """Every webhook subscriber of the account (its own URL and its endpoints'), with its state."""
    return render_template("webhooks/list.html", subscribers=service.list_subscribers(db(), g.principal.account_id))


@web.route("/webhooks/<subscriber_id>")
def webhook_log(subscriber_id: str):
    """One subscriber's delivery log: status, attempts and last answer of each message, newest first."""
    session = db()
    sub = service.get_subscriber(session, g.principal.account_id, subscriber_id)
    status = request.args.get("status") or None
    if status not in (None, *service.STATUSES):
        status = None
    items, total = service.list_messages(session, g.principal.account_id, subscriber_id, status=status,
                                         page_size=200)
    return render_template("webhooks/log.html", sub=sub, messages=items, total=total, status=status)


@web.route("/webhooks/<subscriber_id>/enable", methods=["POST"])
def webhook_enable(subscriber_id: str):
    session = db()
    service.enable(session, g.principal.account_id, subscriber_id)
    session.commit()
    flash("The subscriber is enabled again; redeliver the messages it missed if needed.", "ok")
    return redirect(url_for("web.webhook_log", subscriber_id=subscriber_id))


@web.route("/webhooks/messages/<message_id>/redeliver", methods=["POST"])
def webhook_redeliver(message_id: str):
    session = db()
    msg = service.redeliver(session, g.principal.account_id, message_id)
    session.commit()
    flash(f"Message {msg.id} will be sent again now, with the same webhook-id.", "ok")
    return redirect(url_for("web.webhook_log", subscriber_id=msg.subscriber))
