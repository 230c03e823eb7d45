"""Real-time factor of the whisper provider on 60 s of speech, against faster-whisper called directly.

Builds a 60 s clip by looping the committed speech fixture with ffmpeg, then, in one run:
- clipline: WhisperTranscriber's first call (model load included) and a warm call on the
  fixture itself, then warm calls on the 60 s clip
- baseline: faster-whisper's WhisperModel loaded and called directly with the same options

Prints processing seconds, the real-time factor (processing seconds / audio seconds),
the load time, and the wrapper/baseline ratio. Then the cache: the ASR worker's whole
use case (download the clip, extract and hash its audio, transcribe, store four
formats) on a 60 s clip, once as a miss and then for a second job on the same clip
as a hit, on local mode's real SQLite and folder stores. Nothing here is asserted.

Looped speech repeats itself inside each 30 s window, which trips whisper's
compression-ratio check and its temperature fallback (sampling): the figures are
slower than for ordinary speech and vary from run to run, on both sides alike.
Medians of alternating warm calls, and the word counts, show how far that goes.

The model is --model, else CLIPLINE_WHISPER_MODEL, else the converted base model kept
beside the repository (../shared/models/whisper-base-ct2).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, write_summary  # noqa: E402

from clipline.asr import whisper as whisper_module  # noqa: E402
from clipline.asr.whisper import WhisperTranscriber  # noqa: E402
from clipline.media.ffmpeg_binary import find_ffmpeg  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SPEECH_WAV = REPO_ROOT / "tests" / "fixtures" / "speech" / "speech.wav"


def default_model() -> str:
    configured = os.environ.get("CLIPLINE_WHISPER_MODEL")
    if configured:
        return configured
    beside_repo = REPO_ROOT.parent / "shared" / "models" / "whisper-base-ct2"
    return str(beside_repo) if beside_repo.is_dir() else "base"


def make_long_speech(ffmpeg: str, seconds: float, out: Path) -> Path:
    subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(SPEECH_WAV),
         "-t", f"{seconds:g}", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", str(out)],
        check=True,
    )  # fmt: skip
    return out


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def timed(run) -> tuple[float, object]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def measure_rtf(model: str, threads: int, audio: Path, repeats: int) -> dict:
    """First call and warm calls through the provider, and the same work done by faster-whisper directly."""
    from faster_whisper import WhisperModel

    provider = WhisperTranscriber(model, cpu_threads=threads, timeout_seconds=3600)
    # The load is measured on the short fixture, which decodes the same way every time,
    # so first minus warm is the load and not fallback noise.
    first_seconds, _ = timed(lambda: provider.transcribe(SPEECH_WAV, "en", lambda _: None))
    short_warm_seconds, _ = timed(lambda: provider.transcribe(SPEECH_WAV, "en", lambda _: None))

    direct_load_seconds, direct = timed(
        lambda: WhisperModel(model, device="cpu", compute_type=whisper_module.COMPUTE_TYPE, cpu_threads=threads)
    )

    def direct_call():
        segments, _ = direct.transcribe(
            str(audio), language="en", beam_size=whisper_module.BEAM_SIZE, word_timestamps=True, vad_filter=True
        )
        return list(segments)  # the generator does the work as it is consumed

    # Alternate the two so that any drift (heat, other load) falls on both alike.
    provider_warm: list[float] = []
    direct_warm: list[float] = []
    provider_words: list[int] = []
    direct_words: list[int] = []
    for _ in range(repeats):
        elapsed, warm_transcript = timed(lambda: provider.transcribe(audio, "en", lambda _: None))
        provider_warm.append(elapsed)
        provider_words.append(len(warm_transcript.words))
        elapsed, segments = timed(direct_call)
        direct_warm.append(elapsed)
        direct_words.append(sum(len(segment.words or ()) for segment in segments))
    return {
        "words": provider_words,
        "direct_words": direct_words,
        "first": first_seconds,
        "short_warm": short_warm_seconds,
        "warm": statistics.median(provider_warm),
        "direct_load": direct_load_seconds,
        "direct_warm": statistics.median(direct_warm),
    }


class _NoStateMachine:
    """The task-token side, which this benchmark does not time: every call is accepted."""

    def heartbeat(self, task_token: str) -> None:
        return None

    def succeed(self, task_token: str, output: dict) -> None:
        return None

    def fail(self, task_token: str, error_name: str, cause: str) -> None:
        raise RuntimeError(f"the transcription failed: {error_name} {cause}")


def measure_cache_speedup(model: str, threads: int, audio: Path, scratch: Path) -> dict:
    """Seconds for the worker's use case on a miss, and on a hit for a second job on the same clip."""
    from datetime import timedelta

    from clipline.adapters.local.filesystem_artifact_store import FilesystemArtifactStore, LocalUrlSigner
    from clipline.adapters.local.sqlite_asr_job_repository import SqliteAsrJobRepository
    from clipline.adapters.local.sqlite_job_repository import SqliteJobRepository
    from clipline.composition import SystemClock
    from clipline.domain.jobs import ClipRequest, JobChange, JobStatus, Stage, new_job
    from clipline.domain.transcription import transcribe_clip
    from clipline.domain.use_cases import Limits, Services
    from clipline.media.audio import FfmpegAudioExtractor

    ffmpeg = find_ffmpeg(None)
    clip = scratch / "clip.mp4"
    subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
         "-i", str(audio), "-shortest", "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac", str(clip)],
        check=True,
    )  # fmt: skip
    clock = SystemClock()
    services = Services(
        jobs=SqliteJobRepository(scratch / "db.sqlite3", clock.now),
        artifacts=FilesystemArtifactStore(scratch / "artifacts", LocalUrlSigner(b"k" * 32), "http://127.0.0.1"),
        workflow=None,
        source_guard=None,
        prober=None,
        clipper=None,
        telemetry=type("NoTelemetry", (), {"count": lambda self, *a, **k: None, "observe": lambda self, *a, **k: None})(),
        clock=clock,
        limits=Limits(max_clip_seconds=600, retention=timedelta(days=1), signed_url_ttl=timedelta(hours=1)),
        work_dir=scratch,
        asr_jobs=SqliteAsrJobRepository(scratch / "db.sqlite3"),
        transcriber=WhisperTranscriber(model, cpu_threads=threads, timeout_seconds=3600),
        audio_extractor=FfmpegAudioExtractor(ffmpeg, 600),
        task_callback=_NoStateMachine(),
    )
    # Load the model first, so the miss is transcription and not loading.
    services.transcriber.transcribe(SPEECH_WAV, "en", lambda _: None)

    def one_job():
        request = ClipRequest(source_url="https://example.com/a.mp4", start_seconds=0, end_seconds=60, transcribe=True)
        job = services.jobs.create(new_job(request, "bench", "bench", clock.now(), timedelta(days=1)))
        key = services.artifacts.put_file(f"jobs/{job.id}/clip.mp4", clip, "video/mp4").key
        services.jobs.update(job.id, JobChange(status=JobStatus.RUNNING, stage=Stage.CLIP, artifacts={"clip": key}))
        return timed(lambda: transcribe_clip(services, job.id, key, "en", "token"))

    miss_seconds, miss = one_job()
    hit_seconds, hit = one_job()
    assert (miss.cache_hit, hit.cache_hit) == (False, True), (miss, hit)
    return {"miss": miss_seconds, "hit": hit_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name or CTranslate2 folder")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: faster-whisper decides)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the looped speech clip")
    parser.add_argument("--repeats", type=int, default=3, help="warm calls per side; the median is reported")
    parser.add_argument("--summary-json", type=Path, help="also write the summary rows here, for report.py")
    args = parser.parse_args()
    model = args.model or default_model()

    with tempfile.TemporaryDirectory() as scratch:
        audio = make_long_speech(find_ffmpeg(None), args.seconds, Path(scratch) / "speech-long.wav")
        seconds = wav_seconds(audio)
        print(f"model {model}  threads {args.threads or 'auto'}  cpus {os.cpu_count()}  "
              f"compute {whisper_module.COMPUTE_TYPE}  beam {whisper_module.BEAM_SIZE}")  # fmt: skip
        print(f"audio {seconds:.1f} s of looped speech\n")

        rtf = measure_rtf(model, args.threads, audio, args.repeats)
        short = wav_seconds(SPEECH_WAV)
        print(f"{'':34}{'seconds':>9}{'RTF':>8}")
        print(f"{f'clipline first call, {short:.1f} s':34}{rtf['first']:9.2f}{rtf['first'] / short:8.3f}")
        print(f"{f'clipline warm call, {short:.1f} s':34}{rtf['short_warm']:9.2f}{rtf['short_warm'] / short:8.3f}")
        print(f"{f'clipline warm, {seconds:.0f} s (median)':34}{rtf['warm']:9.2f}{rtf['warm'] / seconds:8.3f}")
        print(f"{f'faster-whisper warm, {seconds:.0f} s (median)':34}{rtf['direct_warm']:9.2f}"
              f"{rtf['direct_warm'] / seconds:8.3f}")  # fmt: skip
        print()
        print(f"model load, clipline (first - warm call):  {rtf['first'] - rtf['short_warm']:.2f} s")
        print(f"model load, faster-whisper (files cached): {rtf['direct_load']:.2f} s")
        print(f"clipline / faster-whisper, warm:           {rtf['warm'] / rtf['direct_warm']:.3f}")
        print(f"words per call, clipline:                  {rtf['words']}")
        print(f"words per call, faster-whisper:            {rtf['direct_words']}")

        cache = measure_cache_speedup(model, args.threads, audio, Path(scratch))
        print()
        print(f"worker use case, {seconds:.0f} s clip, cache miss:  {cache['miss']:.2f} s")
        print(f"worker use case, {seconds:.0f} s clip, cache hit:   {cache['hit']:.2f} s")
        print(f"cache hit speedup (miss / hit):            {cache['miss'] / cache['hit']:.1f}x")
    write_summary(args.summary_json, [
        Row("ASR real-time factor",
            f"clipline whisper, {seconds:.0f} s of speech: {rtf['warm']:.2f} s (RTF {rtf['warm'] / seconds:.3f})",
            f"faster-whisper directly: {rtf['direct_warm']:.2f} s (RTF {rtf['direct_warm'] / seconds:.3f})",
            f"{rtf['warm'] / rtf['direct_warm']:.2f}",
            f"medians of {args.repeats} alternating warm calls; model load {rtf['first'] - rtf['short_warm']:.2f} s; "
            f"{os.path.basename(model.rstrip('/'))}, {whisper_module.COMPUTE_TYPE}, beam {whisper_module.BEAM_SIZE}"),
        Row("ASR cache", f"cache hit, {seconds:.0f} s clip: {cache['hit']:.2f} s",
            f"cache miss: {cache['miss']:.2f} s", f"{cache['hit'] / cache['miss']:.3f}",
            "the ASR worker's whole use case; one run each"),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
