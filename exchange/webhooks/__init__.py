"""Durable webhooks (SPEC §5.3): an outbox written with the job's state change, delivered by any free
worker with exponential backoff, one ``webhook-id`` per message across retries and processes.

* :mod:`.outbox` — enqueue (inside the state change's transaction);
* :mod:`.dispatcher` — claim due messages with a lease, send, record the answer, back off, give up,
  disable a subscriber that failed for the whole window;
* :mod:`.service` — the delivery log, manual redelivery and re-enabling, for the API and web.
"""
