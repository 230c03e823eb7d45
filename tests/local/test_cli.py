"""The command line as a user runs it: `clipline clip` and `clipline keys` (webhook secrets too)."""

import json
import os
import re
import subprocess
import sys

import pytest

from clipline.media.probe import FfmpegProber
from tests.conftest import SPEECH_REFERENCE, word_error_rate


def clipline(*args, env=None, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "clipline.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_clip_downloads_the_clip_and_reports_it(media_server, tmp_path, ffmpeg):
    # When a user clips 00:01:00-00:01:10 from a served sample
    out = tmp_path / "out"
    result = clipline(
        "clip", media_server.url("long.mp4"), "--start", "00:01:00", "--end", "00:01:10", "--out", str(out),
        env={"CLIPLINE_ALLOW_PRIVATE_SOURCES": "true"},
    )  # fmt: skip
    # Then it prints the clip's path, duration and job id, and the file is the clip
    assert f"clip:     {out / 'clip.mp4'}" in result.stdout
    assert re.search(r"duration: 10\.0\d\d s", result.stdout)
    assert re.search(r"job:      [0-9a-f]{32}", result.stdout)
    assert FfmpegProber(ffmpeg, 30).probe_file(out / "clip.mp4").duration_seconds == pytest.approx(10, abs=0.04)
    # And it listed each state with its time
    assert re.search(
        r"ProbeSource +\d+\.\d\d s\n +ClipSource +\d+\.\d\d s\n +FinalizeJob +\d+\.\d\d s", result.stderr
    ), result.stderr


def test_clip_burns_in_a_users_subtitles_at_keyframe_accuracy(media_server, tmp_path, ffmpeg):
    # Given an SRT file
    subtitles = tmp_path / "words.srt"
    subtitles.write_text("1\n00:00:00,200 --> 00:00:02,000\nFrom the command line\n")
    out = tmp_path / "out"
    # When a user clips with it burned in, as a stream copy
    result = clipline(
        "clip", media_server.url("long.mp4"), "--start", "30", "--end", "34", "--accuracy", "keyframe",
        "--burn-subtitles", "--subtitles", str(subtitles), "--out", str(out),
        env={"CLIPLINE_ALLOW_PRIVATE_SOURCES": "true"},
    )  # fmt: skip
    # Then both clips are saved, the plain one by stream copy
    assert "(copy)" in result.stdout
    assert f"burned:   {out / 'clip.burned.mp4'}" in result.stdout
    burned = FfmpegProber(ffmpeg, 30).probe_file(out / "clip.burned.mp4")
    assert burned.video_codec == "h264" and burned.duration_seconds == pytest.approx(4, abs=0.04)
    assert re.search(r"BurnIn +\d+\.\d\d s", result.stderr), result.stderr


def test_clip_transcribes_with_real_whisper_and_loses_nothing_on_top_of_the_model(
    media_server, tmp_path, whisper_model
):
    # Given a clip of spoken English with silence around it
    out = tmp_path / "out"
    # When a user clips and transcribes it with the whisper provider
    result = clipline(
        "clip", media_server.url("speech.mp4"), "--start", "1", "--end", "13", "--transcribe", "--out", str(out),
        env={"CLIPLINE_ALLOW_PRIVATE_SOURCES": "true", "CLIPLINE_WHISPER_MODEL": whisper_model},
    )  # fmt: skip
    # Then all four transcript files arrive, and the whole pipeline's text is as good as the model's
    assert f"subtitles: {out / 'transcript.srt'}" in result.stdout
    assert {p.name for p in out.iterdir()} >= {"transcript.srt", "transcript.vtt", "transcript.txt", "transcript.json"}
    text = (out / "transcript.txt").read_text()
    assert word_error_rate(SPEECH_REFERENCE.read_text(), text) <= 0.25, text
    # And the speech, which starts 1 s into the clip, is timed relative to the clip
    transcript = json.loads((out / "transcript.json").read_text())
    first_word = transcript["segments"][0]["words"][0]
    assert 0.5 <= first_word["start"] <= 1.8 and transcript["language"] == "en"
    assert transcript["provider"] == "whisper"


def test_clip_reports_a_refused_request_with_its_code(tmp_path):
    result = clipline("clip", "ftp://example.com/a.mp4", "--start", "0", "--end", "5", "--out", str(tmp_path), check=False)
    assert result.returncode == 2
    assert "error UNSUPPORTED_SOURCE_URL" in result.stderr


def test_keys_create_list_revoke(tmp_path):
    data_dir = str(tmp_path / "data")
    created = clipline("keys", "create", "--name", "dev", "--data-dir", data_dir)
    key = created.stdout.strip()
    assert key.startswith("cl_") and len(key) > 40
    key_id = re.search(r"id (\w+)", created.stderr).group(1)
    listed = clipline("keys", "list", "--data-dir", data_dir).stdout
    assert f"{key_id}  dev  active" in listed and key not in listed
    assert key not in (tmp_path / "data" / "clipline.sqlite3").read_bytes().decode(errors="ignore")
    clipline("keys", "revoke", key_id, "--data-dir", data_dir)
    assert f"{key_id}  dev  revoked" in clipline("keys", "list", "--data-dir", data_dir).stdout
    assert clipline("keys", "revoke", key_id, "--data-dir", data_dir, check=False).returncode == 1


def test_keys_webhook_secret_is_made_once_kept_and_replaced_on_rotate(tmp_path):
    # Given a key; `keys create` printed the key alone
    data_dir = str(tmp_path / "data")
    created = clipline("keys", "create", "--name", "dev", "--data-dir", data_dir)
    assert created.stdout.count("\n") == 1 and "whsec_" not in created.stdout + created.stderr
    # When its webhook secret is asked for twice, then rotated
    first = clipline("keys", "webhook-secret", "--name", "dev", "--data-dir", data_dir).stdout.strip()
    again = clipline("keys", "webhook-secret", "--name", "dev", "--data-dir", data_dir).stdout.strip()
    rotated = clipline("keys", "webhook-secret", "--name", "dev", "--rotate", "--data-dir", data_dir).stdout.strip()
    after = clipline("keys", "webhook-secret", "--name", "dev", "--data-dir", data_dir).stdout.strip()
    # Then it was made on first use and kept, and the rotation replaced it for good
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", first), first
    assert again == first and rotated != first and after == rotated
    # And --aws without the stack's secrets prefix is refused, not guessed
    guessed = clipline("keys", "webhook-secret", "--name", "dev", "--aws", check=False,
                       env={"CLIPLINE_WEBHOOK_SECRETS_PREFIX": ""})  # fmt: skip
    assert guessed.returncode == 2 and "WebhookSecretsPrefix" in guessed.stderr and not guessed.stdout
    # And a name no active key has is refused
    missing = clipline("keys", "webhook-secret", "--name", "nobody", "--data-dir", data_dir, check=False)
    assert missing.returncode == 1 and "no active key named nobody" in missing.stderr and not missing.stdout


def test_keys_carry_a_usage_plan_and_list_shows_it_with_last_use(tmp_path):
    from clipline.composition import SystemClock
    from clipline.local.service import DataDir

    data_dir = str(tmp_path / "data")
    # Given a key created with its own plan, and one on the defaults (here set through the environment)
    created = clipline("keys", "create", "--name", "ci", "--rate", "2.5", "--burst", "5", "--quota", "100", "--period", "week", "--data-dir", data_dir)  # fmt: skip
    key = created.stdout.strip()
    key_id = re.search(r"id (\w+)", created.stderr).group(1)
    assert "rate 2.5/s burst 5 quota 100/week" in created.stderr
    defaults = clipline("keys", "create", "--name", "dev", "--quota", "7", "--data-dir", data_dir, env={"CLIPLINE_KEY_BURST": "9"})
    # When the first key is used
    assert DataDir(tmp_path / "data").key_store(SystemClock()).authenticate(key).id == key_id
    listed = clipline("keys", "list", "--data-dir", data_dir, env={"CLIPLINE_KEY_BURST": "9"}).stdout
    # Then the listing shows each key's plan, when it was created and last used, and never a key
    [ci_line] = [line for line in listed.splitlines() if f"{key_id}  ci  active" in line]
    assert "rate 2.5/s burst 5 quota 100/week" in ci_line
    assert re.search(r"created 20\d\d-\d\d-\d\dT\S+  last used 20\d\d-\d\d-\d\dT\S+$", ci_line), ci_line
    [dev_line] = [line for line in listed.splitlines() if "  dev  active" in line]
    assert "rate 10/s burst 9 quota 7/day" in dev_line and dev_line.endswith("last used never")
    assert key not in listed and defaults.stdout.strip() not in listed


@pytest.mark.parametrize("flags", [["--rate", "0"], ["--burst", "-1"], ["--quota", "many"], ["--period", "year"]])
def test_keys_create_refuses_an_impossible_plan(tmp_path, flags):
    result = clipline("keys", "create", "--name", "x", *flags, "--data-dir", str(tmp_path / "data"), check=False)
    assert result.returncode == 2 and not result.stdout


def test_sample_media_serves_its_folder_with_range_reads_until_stopped(media_dir, tmp_path):
    import shutil
    import signal
    import urllib.request

    # Given a folder that already holds a sample (so none is made)
    shutil.copy(media_dir / "bframes.mp4", tmp_path / "sample.mp4")
    server = subprocess.Popen(
        [sys.executable, "-m", "clipline.cli", "sample-media", "--dir", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # When it is started, it prints the sample's URL on loopback
        url = server.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/sample\.mp4", url)
        # Then a Range read gets exactly those bytes, as ffmpeg's seeks need
        request = urllib.request.Request(url, headers={"Range": "bytes=100-199"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 206
            assert response.read() == (tmp_path / "sample.mp4").read_bytes()[100:200]
    finally:
        server.send_signal(signal.SIGTERM)
    # And SIGTERM stops it cleanly
    assert server.wait(timeout=10) == 0


def _jobs_cli_env(local, name):
    """CLIPLINE_URL and CLIPLINE_API_KEY of a new key on the running service: its jobs are the test's own."""
    from clipline.composition import SystemClock
    from tests.local.conftest import UNTHROTTLED

    _, key = local.service.data.key_store(SystemClock()).create(name, UNTHROTTLED)
    return {"CLIPLINE_URL": local.service.base_url, "CLIPLINE_API_KEY": key}


def test_jobs_list_and_show_a_running_services_jobs(local, media_server):
    from clipline.client import Client

    # Given a key with three jobs that have ended
    env = _jobs_cli_env(local, "cli-lister")
    client = Client(env["CLIPLINE_URL"], env["CLIPLINE_API_KEY"])
    ids = [client.create_job(media_server.url("long.mp4"), n, n + 1, accuracy="keyframe").id for n in range(3)]
    for job_id in ids:
        assert client.wait(job_id, timeout=60, poll_interval=0.2).status.value == "succeeded"
    # When they are listed two at most, then all as JSON
    listed = clipline("jobs", "list", "--limit", "2", env=env)
    everything = json.loads(clipline("jobs", "list", "--json", env=env).stdout)
    # Then one line per job, newest first, says there are more, and the JSON has all three
    lines = listed.stdout.splitlines()
    assert len(lines) == 2 and all(re.match(r"[0-9a-f]{32}  succeeded  done +100%  20\d\d-", line) for line in lines)
    assert [line.split()[0] for line in lines] == [job["id"] for job in everything[:2]]
    assert "more jobs than 2" in listed.stderr
    assert sorted(job["id"] for job in everything) == sorted(ids) and everything[0]["resultKeys"]["clip"]
    # And a status none has lists nothing
    failed = clipline("jobs", "list", "--status", "failed", env=env)
    assert failed.stdout == "" and "no jobs with status failed" in failed.stderr
    # And show prints one job, as text or as the API's JSON
    shown = clipline("jobs", "show", ids[0], env=env).stdout
    assert f"job:       {ids[0]}" in shown and "status:    succeeded (stage done, 100%)" in shown
    assert "artifacts: clip" in shown and "range:     0-1 s (keyframe)" in shown
    assert json.loads(clipline("jobs", "show", ids[0], "--json", env=env).stdout)["id"] == ids[0]


def test_jobs_cancel_stops_a_running_job_and_leaves_an_ended_one_alone(local, media_server, stalled_source_url):
    import time

    from clipline.client import Client

    env = _jobs_cli_env(local, "cli-canceller")
    client = Client(env["CLIPLINE_URL"], env["CLIPLINE_API_KEY"])
    # Given a job that has succeeded, and one stuck on a source that never answers
    done = client.create_job(media_server.url("long.mp4"), 0, 1, accuracy="keyframe").id
    assert client.wait(done, timeout=60, poll_interval=0.2).status.value == "succeeded"
    stuck = client.create_job(stalled_source_url, 0, 5).id
    deadline = time.monotonic() + 15
    while client.get_job(stuck).status.value != "running":
        assert time.monotonic() < deadline, client.get_job(stuck)
        time.sleep(0.05)
    # When each is cancelled from the command line
    cancelled = clipline("jobs", "cancel", stuck, env=env)
    left_alone = clipline("jobs", "cancel", done, env=env)
    # Then the running one is cancelled, and the ended one keeps its artifacts
    assert cancelled.stdout == f"job {stuck} cancelled in stage probe\n"
    assert client.get_job(stuck).status.value == "cancelled"
    assert left_alone.stdout == f"job {done} had already ended (succeeded); nothing cancelled\n"
    assert client.get_job(done).status.value == "succeeded" and client.result(done).artifacts
    # And --json prints the job as it now is
    assert json.loads(clipline("jobs", "cancel", stuck, "--json", env=env).stdout)["status"] == "cancelled"


def test_jobs_delete_removes_an_ended_jobs_artifacts_once(local, media_server):
    from clipline.client import Client

    env = _jobs_cli_env(local, "cli-deleter")
    client = Client(env["CLIPLINE_URL"], env["CLIPLINE_API_KEY"])
    job_id = client.create_job(media_server.url("long.mp4"), 0, 1, accuracy="keyframe").id
    assert client.wait(job_id, timeout=60, poll_interval=0.2).status.value == "succeeded"
    deleted = clipline("jobs", "delete", job_id, env=env)
    assert deleted.stdout.startswith(f"job {job_id} deleted: its artifacts are removed, its record stays until 20")
    assert client.get_job(job_id).status.value == "deleted"
    again = clipline("jobs", "delete", job_id, env=env)
    assert again.stdout == f"job {job_id} was already deleted; nothing left to delete\n"


def test_jobs_commands_report_the_apis_error_and_need_a_url_and_key(local):
    env = _jobs_cli_env(local, "cli-errors")
    missing = clipline("jobs", "show", "0" * 32, env=env, check=False)
    assert missing.returncode == 1 and not missing.stdout
    assert re.fullmatch(r"error JOB_NOT_FOUND: job 0{32} not found \(correlation id [\w-]+\)\n", missing.stderr)
    # --url and --api-key stand in for the environment
    flags = clipline("jobs", "list", "--url", env["CLIPLINE_URL"], "--api-key", env["CLIPLINE_API_KEY"],
                     env={"CLIPLINE_URL": "", "CLIPLINE_API_KEY": ""})  # fmt: skip
    assert flags.stdout == "" and "no jobs" in flags.stderr
    unset = clipline("jobs", "list", env={"CLIPLINE_URL": "", "CLIPLINE_API_KEY": ""}, check=False)
    assert unset.returncode == 2 and "--url or CLIPLINE_URL and --api-key or CLIPLINE_API_KEY" in unset.stderr


def test_jobs_list_offers_every_job_status():
    from clipline.domain.jobs import JobStatus
    from clipline.job_commands import STATUSES

    assert STATUSES == tuple(status.value for status in JobStatus)


def test_upload_prints_the_source_key_a_job_then_clips(local, media_dir):
    from tests.local.conftest import Client

    env = _jobs_cli_env(local, "cli-uploader")
    uploaded = clipline("upload", str(media_dir / "speech.mp4"), env=env)
    (source_key,) = uploaded.stdout.split()
    assert source_key.startswith("uploads/") and source_key.endswith("/speech.mp4")
    assert "clip it with sourceKey" in uploaded.stderr
    client = Client(env["CLIPLINE_URL"], env["CLIPLINE_API_KEY"])
    created = client.request("POST", "/api/jobs", {"sourceKey": source_key, "start": 0, "end": 1})
    assert created.status == 202, created.body
    assert client.wait(created.body["id"])["status"] == "succeeded"
