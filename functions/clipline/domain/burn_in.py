"""Pipeline step: draw the job's subtitles into its clip.

The subtitles are the user's own (stored with the job when it was created) or the
job's transcript, read back from its SRT artifact: what is burned in is exactly
what the user can download beside it. The plain clip is kept.
"""

from __future__ import annotations

from pathlib import Path

from . import errors
from .jobs import Job, Stage
from .subtitles import Cue, parse_srt
from .use_cases import (
    BURNED_CLIP_ARTIFACT,
    CLIP_ARTIFACT,
    SUBTITLES_FILE,
    ProgressReporter,
    Services,
    artifact_key,
    enter_stage,
    exit_stage_with_artifact,
    scratch_folder,
)


def burn_subtitles(services: Services, job_id: str) -> Job:
    """Render the job's subtitles into its clip and store the result beside it.

    Raises:
        NoVideoStreamError, ClipTimeoutError (from the burner), BurnInFailedError (from
        the burner, or no burner: the deployment has no fonts),
        InternalError (no clip or no subtitles to burn: the pipeline ran out of order),
        StorageUnavailableError, JobFinishedError.
    """
    job = enter_stage(services, job_id, Stage.BURN_IN)
    if services.subtitle_burner is None:
        raise errors.BurnInFailedError("this deployment has no fonts to draw subtitles with (CLIPLINE_FONTS_DIR)")
    cues = _subtitles_of(services, job)
    clip_key = job.artifacts.get(CLIP_ARTIFACT)
    if clip_key is None:
        raise errors.InternalError(f"job {job_id} reached burn-in without a clip")
    with scratch_folder(services, f"burn-{job_id}-") as work_dir:
        clip = work_dir / Path(clip_key).name
        services.artifacts.download(clip_key, clip)
        burned = services.subtitle_burner.burn(
            clip, cues, job.request.subtitle_style, work_dir, ProgressReporter(services, job, Stage.BURN_IN)
        )
        stored = services.artifacts.put_file(artifact_key(job_id, burned.name), burned, "video/mp4")
    return exit_stage_with_artifact(services, job, Stage.BURN_IN, BURNED_CLIP_ARTIFACT, stored.key)


def _subtitles_of(services: Services, job: Job) -> tuple[Cue, ...]:
    if job.request.subtitles_sha256 is not None:
        key = artifact_key(job.id, SUBTITLES_FILE)
    elif "srt" in job.artifacts:
        key = job.artifacts["srt"]
    else:
        raise errors.InternalError(f"job {job.id} reached burn-in with neither its own subtitles nor a transcript")
    try:
        return parse_srt(services.artifacts.read_bytes(key).decode())
    except errors.ArtifactNotFoundError:
        raise errors.StorageFailureError(f"the subtitles of job {job.id} are missing from storage") from None
