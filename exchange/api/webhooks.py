"""Webhook subscribers, their delivery log, manual redelivery and re-enabling."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from ..schemas.common import page_of
from ..schemas.webhooks import (
    WebhookMessageQueryArgsSchema,
    WebhookMessageSchema,
    WebhookSubscriberListSchema,
    WebhookSubscriberSchema,
)
from ..webhooks import service
from .context import control_plane, db

blp = Blueprint("webhooks", __name__, url_prefix="/v1/webhooks",
                description="Webhook subscribers and the delivery log of their messages")
WebhookMessagePageSchema = page_of(WebhookMessageSchema, "WebhookMessagePageSchema")


@blp.route("/subscribers")
class Subscribers(MethodView):
    @blp.response(200, WebhookSubscriberListSchema)
    def get(self):
        """The account's webhook subscribers (its own URL and its endpoints'), with their health."""
        return {"items": service.list_subscribers(db(), control_plane().account_id)}


@blp.route("/subscribers/<subscriber_id>")
class SubscriberById(MethodView):
    @blp.response(200, WebhookSubscriberSchema)
    def get(self, subscriber_id):
        """One subscriber: state (active, failing, disabled), since when, and message counts."""
        return service.get_subscriber(db(), control_plane().account_id, subscriber_id)


@blp.route("/subscribers/<subscriber_id>/enable")
class EnableSubscriber(MethodView):
    @blp.response(200, WebhookSubscriberSchema)
    def post(self, subscriber_id):
        """Turn a subscriber disabled after failing for the whole retry window back on."""
        session = db()
        sub = service.enable(session, control_plane().account_id, subscriber_id)
        session.commit()
        return sub


@blp.route("/subscribers/<subscriber_id>/messages")
class SubscriberMessages(MethodView):
    @blp.arguments(WebhookMessageQueryArgsSchema, location="query")
    @blp.response(200, WebhookMessagePageSchema)
    def get(self, args, subscriber_id):
        """The delivery log: every message to this subscriber, newest first, with attempts and last answer."""
        items, total = service.list_messages(db(), control_plane().account_id, subscriber_id, **args)
        return {"items": items, "page": args["page"], "page_size": args["page_size"], "total": total}


@blp.route("/messages/<message_id>")
class MessageById(MethodView):
    @blp.response(200, WebhookMessageSchema)
    def get(self, message_id):
        """One message of the delivery log."""
        return service.get_message(db(), control_plane().account_id, message_id)


@blp.route("/messages/<message_id>/redeliver")
class Redeliver(MethodView):
    @blp.response(202, WebhookMessageSchema)
    def post(self, message_id):
        """Send a message again now, under the same `webhook-id`; the retry window starts again."""
        session = db()
        msg = service.redeliver(session, control_plane().account_id, message_id)
        session.commit()
        return msg
