"""What clipline does, one function per use case. Handlers call exactly one of these.

One module per concern: ``jobs`` (the API's), ``steps`` (the pipeline's),
``listing``, ``cancellation``, ``failures``, ``recovery``, ``uploads`` and ``webhooks``; ``context`` holds the ports and
limits they all take. Everything public is re-exported here.
"""

from .context import (
    BURNED_CLIP_ARTIFACT,
    CLIP_ARTIFACT,
    SUBTITLES_FILE,
    TRANSCRIPT_ARTIFACTS,
    Limits,
    Services,
    artifact_key,
    artifact_prefix,
    content_type_of,
)
from .cancellation import CANCEL_CAUSE, Removal, cancel_or_delete_job
from .failures import RecordedFailure, fail_job, record_execution_end
from .jobs import (
    IDEMPOTENCY_WINDOW,
    MAX_SUBTITLES_BYTES,
    ArtifactLink,
    JobResult,
    NewJobRequest,
    create_job,
    get_job,
    get_job_result,
)
from .listing import JobListing, list_jobs
from .recovery import (
    INTERRUPT_BATCH,
    Recovery,
    interrupt_unfinished_jobs,
    remove_scratch_folders,
)
from .steps import (
    END_TOLERANCE_SECONDS,
    PROGRESS_INTERVAL_SECONDS,
    ProgressReporter,
    clip_source,
    enter_stage,
    exit_stage,
    exit_stage_with_artifact,
    finalize_job,
    probe_source,
    scratch_folder,
)
from .uploads import MAX_SINGLE_PUT_BYTES, UploadLink, create_upload, uploaded_source
from .webhooks import (
    DeliveryOutcome,
    checked_webhook_url,
    deliver_webhook,
    event_body,
    redeliver_webhook,
)

__all__ = [
    "BURNED_CLIP_ARTIFACT", "CLIP_ARTIFACT", "END_TOLERANCE_SECONDS", "IDEMPOTENCY_WINDOW", "INTERRUPT_BATCH",
    "MAX_SUBTITLES_BYTES", "PROGRESS_INTERVAL_SECONDS", "SUBTITLES_FILE", "TRANSCRIPT_ARTIFACTS",
    "ArtifactLink", "JobResult", "Limits", "NewJobRequest", "ProgressReporter", "RecordedFailure", "Recovery",
    "Services", "artifact_key", "artifact_prefix", "clip_source", "content_type_of", "create_job", "enter_stage",
    "exit_stage", "exit_stage_with_artifact", "fail_job", "finalize_job", "get_job", "get_job_result",
    "interrupt_unfinished_jobs", "JobListing", "list_jobs", "CANCEL_CAUSE", "Removal", "cancel_or_delete_job",
    "MAX_SINGLE_PUT_BYTES", "UploadLink", "create_upload", "uploaded_source", "probe_source", "DeliveryOutcome", "checked_webhook_url", "deliver_webhook",
    "event_body", "redeliver_webhook", "record_execution_end", "remove_scratch_folders", "scratch_folder",
]  # fmt: skip
