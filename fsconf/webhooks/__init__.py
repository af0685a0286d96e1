"""Webhooks: Twilio's signature, the durable outbox, and the delivery workers.

* :mod:`~fsconf.webhooks.signing` is pure: the signature and the exact request.
* :mod:`~fsconf.webhooks.outbox` writes callback rows in the caller's transaction.
* :mod:`~fsconf.webhooks.delivery` sends them, per-conference in order, with retries.
* :mod:`~fsconf.webhooks.transport` puts one request on the wire (lean HTTP/1.1 or requests).
"""

from fsconf.webhooks.delivery import (
    CallbackStateError,
    Clock,
    DeliveryWorker,
    backoff_delay,
    list_callbacks,
    retry,
    retry_all_failed,
)
from fsconf.webhooks.outbox import (
    CONFERENCE_EVENT_GROUPS,
    enqueue,
    enqueue_conference_callback,
    enqueue_recording_callback,
)
from fsconf.webhooks.signing import (
    SIGNATURE_HEADER,
    USER_AGENT,
    build_request,
    compute_signature,
)

__all__ = [
    "CONFERENCE_EVENT_GROUPS",
    "SIGNATURE_HEADER",
    "USER_AGENT",
    "CallbackStateError",
    "Clock",
    "DeliveryWorker",
    "backoff_delay",
    "build_request",
    "compute_signature",
    "enqueue",
    "enqueue_conference_callback",
    "enqueue_recording_callback",
    "list_callbacks",
    "retry",
    "retry_all_failed",
]
