"""Webhooks: the notification a job sends when it ends, signed as the Standard Webhooks specification says.

A job created with a ``webhookUrl`` carries a ``Webhook`` record. When the job
ends, the same write that makes it terminal makes the record ``pending`` with a
message id of its own; every attempt after that is recorded on it, until one is
answered with a 2xx (``delivered``), a 410 stops it, or the retry schedule runs
out (both ``failed``). The message id and the body stay the same on every retry,
so a receiver can drop a duplicate by its ``webhook-id``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import Field

from .models import DomainModel

# The specification's secret form: a prefix, then the base64 of the key bytes.
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
# Attempts a job view shows; older ones are only counted.
RECENT_ATTEMPTS = 10
# What an attempt keeps of an error message: enough to tell a refusal from a timeout.
MAX_ERROR_CHARS = 300
# A receiver answers 410 Gone to say the endpoint no longer exists: stop, as Svix and Stripe do.
STOP_STATUS = 410
# Each delay in the schedule is spread this far either way, so retries of many
# messages that failed together do not arrive together.
JITTER_FRACTION = 0.2


class WebhookEvent(StrEnum):
    SUCCEEDED = "job.succeeded"
    FAILED = "job.failed"
    CANCELLED = "job.cancelled"


class WebhookState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    # The job was deleted before its message was taken; it is not sent any more.
    WITHDRAWN = "withdrawn"


class WebhookAttempt(DomainModel):
    at: datetime
    status: int | None = Field(None, description="The receiver's HTTP status; None when no answer came")
    error: str | None = Field(None, description="Why the attempt failed, when it did")


class Webhook(DomainModel):
    """Where a job's end is announced, and how the announcement went."""

    url: str
    state: WebhookState = WebhookState.PENDING
    # Set when the job ends: the event, its message id and when it happened.
    event: WebhookEvent | None = None
    message_id: str | None = None
    event_at: datetime | None = None
    next_attempt_at: datetime | None = None
    # A redelivery starts a new round of attempts, so a queue message of an older round is dropped.
    round: int = 0
    attempt_count: int = 0
    attempts: tuple[WebhookAttempt, ...] = ()

    @property
    def is_due(self) -> bool:
        """True while an ended job's message waits to be sent."""
        return self.state is WebhookState.PENDING and self.message_id is not None

    def announce(self, event: WebhookEvent, now: datetime) -> "Webhook":
        """The record as the job ends with ``event``: pending, with its message id, due now."""
        return self.model_copy(
            update={
                "state": WebhookState.PENDING,
                "event": event,
                "message_id": f"msg_{uuid.uuid4().hex}",
                "event_at": now,
                "next_attempt_at": now,
                "attempt_count": 0,
            }
        )

    def withdrawn(self) -> "Webhook":
        """The record once the job is deleted: nothing more is sent."""
        return self.model_copy(update={"state": WebhookState.WITHDRAWN, "next_attempt_at": None})

    def redeliver(self, now: datetime) -> "Webhook":
        """The same message again, with a fresh schedule: its id and body do not change."""
        return self.model_copy(
            update={"state": WebhookState.PENDING, "next_attempt_at": now, "attempt_count": 0, "round": self.round + 1}
        )

    def after(self, attempt: WebhookAttempt, schedule: "RetrySchedule", rng: random.Random | None = None) -> "Webhook":
        """The record once ``attempt`` was made: delivered, failed, or pending until the next one."""
        count = self.attempt_count + 1
        attempts = (*self.attempts, attempt)[-RECENT_ATTEMPTS:]
        status = attempt.status
        if status is not None and 200 <= status < 300:
            state, next_at = WebhookState.DELIVERED, None
        elif status == STOP_STATUS or count > len(schedule.delays_seconds):
            state, next_at = WebhookState.FAILED, None
        else:
            state, next_at = WebhookState.PENDING, attempt.at + schedule.delay_before(count + 1, rng)
        return self.model_copy(
            update={"state": state, "next_attempt_at": next_at, "attempt_count": count, "attempts": attempts}
        )


@dataclass(frozen=True)
class RetrySchedule:
    """How long to wait before each retry: ``delays_seconds[0]`` before the second attempt, and so on.

    After the last delay's attempt fails, the message is given up on.
    """

    delays_seconds: tuple[float, ...]

    @classmethod
    def parse(cls, text: str) -> "RetrySchedule":
        """From a comma-separated list of seconds, as the setting holds it. Raises ValueError."""
        delays = tuple(float(part) for part in text.split(",") if part.strip())
        if any(delay < 0 for delay in delays):
            raise ValueError("webhook retry delays must not be negative")
        return cls(delays)

    @property
    def total(self) -> timedelta:
        return timedelta(seconds=sum(self.delays_seconds))

    def delay_before(self, attempt_number: int, rng: random.Random | None = None) -> timedelta:
        """The wait before attempt ``attempt_number`` (2 for the first retry), with jitter."""
        base = self.delays_seconds[attempt_number - 2]
        spread = (rng or random).uniform(-JITTER_FRACTION, JITTER_FRACTION)
        return timedelta(seconds=base * (1 + spread))


# The Standard Webhooks schedule after the first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_WEBHOOK_SCHEDULE = RetrySchedule((5, 300, 1800, 7200, 18000, 36000, 36000))


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header's value: ``v1,`` and the base64 HMAC-SHA256 of ``id.timestamp.body``.

    Raises:
        ValueError: ``secret`` is not a ``whsec_`` secret.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    key = base64.b64decode(secret[len(SECRET_PREFIX) :])
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def short_error(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
