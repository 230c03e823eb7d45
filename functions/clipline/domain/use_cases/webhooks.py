"""Webhooks: checking a job's webhook URL, announcing the message when the job ends, delivering and redelivering it.

The message is made pending by the same write that ends the job (``ended_with``);
``announce`` then tells the host's queue. Each host's delivery worker (local
mode's outbox, the delivery Lambda on AWS) calls ``deliver_webhook`` when the
message is due, and schedules the next call from the outcome.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Callable
from urllib.parse import urlsplit

from pydantic import TypeAdapter

from .. import errors
from ..jobs import Job, JobStatus
from ..webhooks import (
    STOP_STATUS,
    Webhook,
    WebhookAttempt,
    WebhookEvent,
    WebhookState,
    short_error,
    sign,
)
from .context import Services, get_job

# Renders the event's ``data``: the job view GET /api/jobs/{id} returns (an outer layer's schema).
JobRenderer = Callable[[Job], dict]
USER_AGENT = "clipline-webhooks/1"
_TIME = TypeAdapter(datetime)


def checked_webhook_url(services: Services, url: str) -> str:
    """``url`` with its scheme in lower case, if clipline may call it.

    The host passes the egress policy sources pass: allowlist, ports, and an address
    that is public (both lifted where private sources are allowed). The check is made
    again at every delivery, on the address that is then connected to.

    Raises:
        InvalidWebhookUrlError: not https (or http where allowed), not ASCII, or not a URL.
        WebhookUrlNotAllowedError: the policy refuses its host, or the host does not resolve.
    """
    url = url.strip()
    if not url.isascii():
        # Sent as the request line, which is ASCII: other characters are percent-encoded by the caller.
        raise errors.InvalidWebhookUrlError("webhookUrl must be ASCII; percent-encode other characters")
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    allowed = ("https", "http") if services.limits.allow_http_webhooks else ("https",)
    if scheme not in allowed:
        raise errors.InvalidWebhookUrlError(f"webhookUrl must be an {' or '.join(allowed)} URL")
    url = scheme + url[len(scheme) :]
    try:
        services.source_guard.check(url)
    except errors.UnsupportedSourceUrlError as error:
        raise errors.InvalidWebhookUrlError(f"webhookUrl is not usable: {error.message}") from None
    except (errors.SourceNotAllowedError, errors.SourceUnreachableError) as error:
        raise errors.WebhookUrlNotAllowedError(f"webhookUrl is refused: {error.message}") from None
    return url


_EVENT_OF_END = {
    JobStatus.SUCCEEDED: WebhookEvent.SUCCEEDED,
    JobStatus.FAILED: WebhookEvent.FAILED,
    JobStatus.CANCELLED: WebhookEvent.CANCELLED,
}


def ended_with(job: Job, status: JobStatus, now: datetime) -> Webhook | None:
    """The webhook record for the change that ends ``job`` with ``status``: its message, due now."""
    if job.webhook is None:
        return None
    return job.webhook.announce(_EVENT_OF_END[status], now)


def announce(services: Services, job: Job) -> None:
    """Tell the queue that the ended ``job``'s message is due, when it has one."""
    if job.webhook is not None and job.webhook.is_due and services.webhook_queue is not None:
        services.webhook_queue.announce(job.id, job.webhook.message_id, job.webhook.round)


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one call of ``deliver_webhook`` did.

    ``outcome`` is delivered, retrying, failed (given up on), stopped (by a 410),
    waiting (due later: nothing was sent), or skipped (not due at all: delivered
    already, of an older round, or its job gone). ``retry_in_seconds`` is set when
    retrying or waiting.
    """

    outcome: str
    job: Job | None = None
    retry_in_seconds: float | None = None

    @property
    def last_status(self) -> int | None:
        """The receiver's status at the job's latest attempt, for the delivery workers' logs."""
        attempts = self.job.webhook.attempts if self.job is not None and self.job.webhook is not None else ()
        return attempts[-1].status if attempts else None


def event_body(job: Job, render: JobRenderer) -> bytes:
    """The message body: ``{"type", "timestamp", "data"}``, the same bytes on every attempt.

    ``data`` is the job view without its ``webhook`` record, the one part that
    changes with each attempt.
    """
    webhook = job.webhook
    assert webhook is not None and webhook.event is not None and webhook.event_at is not None
    data = {name: value for name, value in render(job).items() if name != "webhook"}
    # The timestamp is written as every time in the job view is (ISO 8601, "Z" for UTC).
    timestamp = _TIME.dump_python(webhook.event_at, mode="json")
    document = {"type": webhook.event.value, "timestamp": timestamp, "data": data}
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def deliver_webhook(
    services: Services, job_id: str, message_id: str, render: JobRenderer, round: int | None = None
) -> DeliveryOutcome:
    """Make one attempt at ``message_id`` of ``job_id``, record it on the job, and say what comes next.

    A message that is no longer due (delivered, given up, of a ``round`` a redelivery
    replaced, or its job removed) is skipped, so a repeated call sends nothing; one due
    later than now is left waiting. ``round`` None takes whichever round is current.

    Raises:
        ServiceUnavailableError, StorageUnavailableError: the secret or job store
            could not be reached; nothing was sent, and the call may be repeated.
    """
    try:
        job = services.jobs.get(job_id)
    except errors.JobNotFoundError:
        return DeliveryOutcome("skipped")
    webhook = job.webhook
    if webhook is None or not webhook.is_due or webhook.message_id != message_id:
        return DeliveryOutcome("skipped", job)
    if round is not None and round != webhook.round:
        return DeliveryOutcome("skipped", job)
    early = (webhook.next_attempt_at - services.clock.now()).total_seconds() if webhook.next_attempt_at else 0.0
    if early > 0:
        return DeliveryOutcome("waiting", job, retry_in_seconds=early)
    assert services.webhook_sender is not None and services.webhook_secrets is not None
    body = event_body(job, render)
    secret = services.webhook_secrets.secret_for(job.owner)
    sent_at = services.clock.now()
    headers = signed_headers(secret, message_id, int(sent_at.timestamp()), body)
    response = services.webhook_sender.post(webhook.url, headers, body)
    now = services.clock.now()
    attempt = WebhookAttempt(at=now, status=response.status, error=short_error(response.error) if response.error else None)
    updated = webhook.after(attempt, services.limits.webhook_schedule)
    try:
        job = services.jobs.record_webhook(job_id, updated)
    except errors.WebhookSupersededError:
        # A redelivery began while this attempt was in flight, or another attempt of this round
        # was recorded first: the stored record carries on.
        return DeliveryOutcome("skipped", services.jobs.get(job_id))
    if updated.state is WebhookState.DELIVERED:
        services.telemetry.count("WebhookDeliveries", outcome="delivered")
        services.telemetry.observe("WebhookLatency", max((now - webhook.event_at).total_seconds(), 0.0))
        return DeliveryOutcome("delivered", job)
    if updated.state is WebhookState.FAILED:
        # A 410 is the receiver's own word to stop; running out of attempts is a delivery that never happened.
        outcome = "stopped" if response.status == STOP_STATUS else "failed"
        services.telemetry.count("WebhookDeliveries", outcome=outcome)
        return DeliveryOutcome(outcome, job)
    services.telemetry.count("WebhookDeliveries", outcome="retrying")
    wait = max((updated.next_attempt_at - now).total_seconds(), 0.0)
    return DeliveryOutcome("retrying", job, retry_in_seconds=wait)


def redeliver_webhook(services: Services, job_id: str, owner: str) -> Job:
    """Send an ended job's message again, with a fresh retry schedule; its id and body stay the same.

    Raises:
        JobNotFoundError: no such job of ``owner``'s.
        NoWebhookError: the job was created without a webhookUrl.
        JobNotReadyError: the job has not ended, so there is no message yet.
        JobDeletedError: the job was deleted, and its message withdrawn.
    """
    job = get_job(services, job_id, owner)
    if job.webhook is None:
        raise errors.NoWebhookError(f"job {job_id} was created without a webhookUrl")
    if job.status is JobStatus.DELETED:
        raise errors.JobDeletedError(f"job {job_id} was deleted; its webhook is not sent any more")
    if job.webhook.message_id is None:
        raise errors.JobNotReadyError(f"job {job_id} is {job.status.value}; its webhook is sent when it ends")
    try:
        job = services.jobs.record_webhook(job_id, job.webhook.redeliver(services.clock.now()))
    except errors.WebhookSupersededError:
        # Another redelivery of the same round was recorded a moment ago, and announces it.
        return services.jobs.get(job_id)
    announce(services, job)
    services.telemetry.count("WebhookRedeliveries")
    return job
