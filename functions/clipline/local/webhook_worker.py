"""Local mode's webhook delivery: threads that drain the SQLite outbox, the local stand-in for the delivery Lambda.

Each thread claims the earliest due message, makes one attempt through the same
use case the Lambda runs, and claims the next. Recording the attempt sets the
row's next due time or removes it, so a message is sent once in the normal path;
a service killed mid-attempt sends it again after the claim's lease, at least once.
Between messages a thread sleeps until the next one is due, or until ``announce``
says a job has just ended.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from ..adapters.local.sqlite_webhook_outbox import SqliteWebhookOutbox
from ..api.schemas import job_view_document
from ..domain.use_cases import Services, deliver_webhook
from ..observability import logger

# Longer than an attempt can take (its timeout is at most 30 s), so a claimed message is not claimed twice.
CLAIM_LEASE = timedelta(seconds=60)
# A thread looks at the outbox at least this often, for rows another process wrote.
_IDLE_POLL_SECONDS = 1.0


class WebhookWorkers:
    """``count`` threads sending due webhook messages, from ``start`` until ``stop``; also the WebhookQueue."""

    def __init__(self, outbox: SqliteWebhookOutbox, count: int) -> None:
        self._outbox = outbox
        self._count = count
        self._services: Services | None = None
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []

    def announce(self, job_id: str, message_id: str, round: int) -> None:
        # The message is already in the outbox, written with the job's end: only wake a thread.
        with self._wake:
            self._wake.notify()

    def start(self, services: Services) -> None:
        self._services = services
        self._threads = [
            threading.Thread(target=self._run, name=f"webhook-worker-{index}", daemon=True) for index in range(self._count)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(15)

    def _run(self) -> None:
        assert self._services is not None
        while not self._stop.is_set():
            try:
                busy = self._send_one(self._services)
            except Exception:  # noqa: BLE001 - a store that fails now is tried again at the next round
                logger.exception("webhook delivery failed a round")
                busy = False
            if not busy:
                with self._wake:
                    self._wake.wait(self._idle_wait(self._services))

    def _send_one(self, services: Services) -> bool:
        claimed = self._outbox.claim_due(services.clock.now(), 1, CLAIM_LEASE)
        if not claimed:
            return False
        message = claimed[0]
        outcome = deliver_webhook(services, message.job_id, message.message_id, job_view_document)
        if outcome.outcome == "skipped":
            self._outbox.discard(message)
        logger.info(
            f"webhook {outcome.outcome}",
            extra={
                "jobId": message.job_id,
                "messageId": message.message_id,
                "status": outcome.last_status,
                "retryInSeconds": outcome.retry_in_seconds,
            },
        )
        return True

    def _idle_wait(self, services: Services) -> float:
        due = self._outbox.next_due()
        if due is None:
            return _IDLE_POLL_SECONDS
        return min(max((due - services.clock.now()).total_seconds(), 0.01), _IDLE_POLL_SECONDS)
