"""Frame-accurate H.264 cuts that re-encode only the frames they must ("smart cut").

A stream copy can only start on a keyframe. To start at ``start`` exactly, the
frames from ``start`` up to the first keyframe after it (the head) are
re-encoded, every packet from that keyframe on is copied, and when B-frames stop
the copy short of ``end`` the last few frames (the foot) are re-encoded too.

The runs, of which only the first reads the user's source:

1. Fetch. ``-ss start -i source -c copy`` writes the range, from the keyframe at
   or before ``start`` (the head has to be decoded from there), into a local NUT
   file, together with a ``framecrc`` listing of its video packets. Each later
   run reads that local copy, so the source is opened once, with the few Range
   requests of an input seek. The listing rather than ``-skip_frame nokey`` with
   showinfo: it needs no decoding, gives each packet's PTS as an integer in the
   stream's own time base (exact, never rounded), its keyframe flag, and the
   decode order, which the seam with B-frames depends on.
2. Plan (``plan_cut``, pure): which frames are in the clip, where the copy can
   start and where it must stop. A copy may end after packet n only if the first
   n packets in decode order are exactly the n earliest frames: otherwise a kept
   B-frame refers to a dropped frame, or a dropped-late frame would be shown.
3. Encode and copy, from the local file, into one MP4 per part, each shifted so
   its first frame is at 0 and all in the source's time base: the head and foot
   with libx264 at the source's profile, level, pixel format and frame rate, and
   without B-frames; the copied packets picked by decode index (the ``noise``
   filter's ``drop``), never by seeking to a keyframe time; the audio re-encoded
   for exactly the span of the clip's frames.
4. Join with the concat demuxer. Its ``auto_convert`` runs ``h264_mp4toannexb``
   on each part, so the parts meet as Annex-B with their own SPS/PPS in-band
   before each IDR, and a decoder switches parameter sets at every seam. The
   parts' PTS are placed end to end; ``setts`` rewrites DTS as
   ``(N - delay) * frame``, which rises through the seams whatever each part's
   B-frame delay was. The MP4 is written with +faststart in the source's time base.
5. Validate: the MP4's packets (one per planned frame, PTS 0, 1, 2... frames
   apart, DTS rising) and an error-free decode across each seam.

Measured on ffmpeg 9 (DESIGN has ffmpeg 7's), what did not work:

- The concat demuxer on the parts as they are gives non-monotonic DTS at each
  seam: a part with B-frames starts decoding before its first frame is shown.
  ffmpeg then clamped PTS to DTS and the copy's B-frames came out of order.
  Hence the rewritten DTS, and heads without B-frames, so that the copy's delay
  is the whole stream's.
- ``setts`` given only ``dts`` set PTS from it too; it needs ``pts=PTS``.
- Concatenating Annex-B bytes and remuxing them: the raw H.264 demuxer makes
  PTS = DTS and cannot recover B-frame order.
- Without ``auto_convert`` each part's SPS/PPS stay in its extradata, of which the
  join keeps the first; the copy then decoded with the head's PPS ("illegal
  modification_of_pic_nums_idc").
- The concat demuxer reads every part in the first part's time base (a 1/51200
  part after a 1/12800 one ran four times too slow), and placed a two-frame NUT
  part an hour off, unable to find its start time: hence MP4 parts, one time base.
- For the local copy, NUT refuses negative timestamps and Matroska rounds them to
  milliseconds, while the pre-roll before ``start`` is negative; the copy is
  shifted by a fixed offset instead, exact in every time base.
- Cutting at a rounded keyframe time starts a GOP early, which is why copied
  packets are picked by index and seeks aim half a frame inside a frame.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

from ..domain.jobs import ClipRequest, SourceInfo
from ..domain.ports import ProgressCallback
from .encoding import AAC_OPTIONS, X264_QUALITY_OPTIONS
from .ffmpeg_process import Deadline, FfmpegRun, last_stderr_line, run_ffmpeg
from .probe import SourceAccess, classify_fetch_error, local_file_fetch

# NUT refuses negative timestamps and the pre-roll before ``start`` has them; an
# hour is more than any GOP and a whole number of seconds, so exact in any time base.
_LOCAL_COPY_OFFSET_SECONDS = 3600
# Fetched past ``end`` so the frame nearest ``end``, and the audio to it, are in the copy.
_FETCH_MARGIN_SECONDS = 1.0
# Frames decoded past each seam when checking the join.
_SEAM_CHECK_FRAMES = 4

# libx264's names for the H.264 profiles it can encode, by profile_idc; constrained
# baseline is 66 with a constraint flag, which x264's baseline always meets.
_X264_PROFILES = {66: "baseline", 77: "main", 100: "high", 110: "high10", 122: "high422", 244: "high444"}

# Progress when the fetch, the encoding and the join are done; the fetch reads the network.
_FETCH_DONE, _ENCODE_DONE, _JOIN_DONE = 0.5, 0.85, 0.95


class SmartCutFallback(Exception):
    """The range cannot be smart-cut; ``reason`` says why. FfmpegClipper re-encodes it instead.

    Never leaves the media layer, so it is not a ClipLineError.
    """

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(detail or reason)
        self.reason = reason


@dataclass(frozen=True)
class VideoPacket:
    # Presentation and decoding times in seconds, relative to the listing's origin.
    time: Fraction
    decode_time: Fraction
    keyframe: bool


@dataclass(frozen=True)
class PacketListing:
    time_base: Fraction
    packets: tuple[VideoPacket, ...]  # in decode order


# What framecrc prints for a missing timestamp (AV_NOPTS_VALUE).
_NO_TIMESTAMP = -(2**63)


def parse_packet_listing(framecrc: str, origin_seconds: Fraction = Fraction(0)) -> PacketListing:
    """The video packets of ffmpeg's ``framecrc`` output, with times relative to ``origin_seconds``.

    Raises:
        SmartCutFallback: a packet has no timestamp.
    """
    time_base = None
    packets = []
    for line in framecrc.splitlines():
        if line.startswith("#tb 0:"):
            numerator, _, denominator = line.partition(":")[2].strip().partition("/")
            time_base = Fraction(int(numerator), int(denominator))
        if line.startswith("#") or not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if fields[0] != "0":
            continue
        dts, pts = int(fields[1]), int(fields[2])
        if time_base is None or _NO_TIMESTAMP in (dts, pts):
            raise SmartCutFallback("smart_cut_failed", "a video packet has no timestamp")
        # framecrc prints the flags only when they differ from "keyframe" alone.
        flags = next((int(field[2:], 16) for field in fields[6:] if field.startswith("F=")), 1)
        packets.append(
            VideoPacket(
                time=pts * time_base - origin_seconds,
                decode_time=dts * time_base - origin_seconds,
                keyframe=bool(flags & 1),
            )
        )
    return PacketListing(time_base or Fraction(1), tuple(packets))


@dataclass(frozen=True)
class Segment:
    """Frames ``start`` <= time < ``end`` of the clip, copied or re-encoded."""

    start: Fraction
    end: Fraction
    copied: bool


@dataclass(frozen=True)
class CutPlan:
    """How to cut: times are relative to the requested start, in seconds."""

    time_base: Fraction
    frame_duration: Fraction
    frame_count: int
    segments: tuple[Segment, ...]
    first_copied_packet: int  # decode index in the listing; meaningful when a segment is copied
    copied_frames: int
    # How many frames a copied packet may be decoded ahead of its display; the DTS of the
    # joined stream trail its frame index by this much.
    decode_delay: int

    @property
    def first_frame(self) -> Fraction:
        return self.segments[0].start

    @property
    def seams(self) -> list[Fraction]:
        """Clip times, from the clip's first frame, where one part gives way to the next."""
        return [segment.start - self.first_frame for segment in self.segments[1:]]


def plan_cut(listing: PacketListing, duration_seconds: float) -> CutPlan:
    """Plan the cut of ``duration_seconds`` from time 0 of ``listing``.

    The clip holds the frames nearest the ends: a frame is in when its middle falls
    in [0, duration), so each end is within half a frame and the length within one.

    Raises:
        SmartCutFallback: the frame rate varies, or the listing does not reach back to a
            keyframe at or before the first frame.
    """
    packets = listing.packets
    shown = sorted(packet.time for packet in packets)
    # The shortest step is the frame: the fetch stops by decoding time, so B-frames shown
    # before its last frames may be missing and leave wider gaps there, past the range.
    steps = {later - earlier for earlier, later in pairwise(shown)}
    if not steps or min(steps) <= 0:
        raise SmartCutFallback("smart_cut_failed", "the fetched range holds no run of distinct frames")
    frame = min(steps)
    duration = Fraction(duration_seconds).limit_denominator(1_000_000)
    in_clip = [time for time in shown if -frame / 2 <= time < duration - frame / 2]
    if not in_clip:
        raise SmartCutFallback("smart_cut_failed", "no frame falls in the range")
    if any(later - earlier != frame for earlier, later in pairwise(in_clip)):
        # One frame duration lets the joined stream's DTS be computed from the packet index.
        raise SmartCutFallback("smart_cut_variable_frame_rate", "the frames in the range are not evenly spaced")
    first, frame_count = in_clip[0], len(in_clip)
    end = first + frame_count * frame
    if not packets[0].keyframe or packets[0].time > first:
        raise SmartCutFallback("smart_cut_failed", "the fetched range does not start at a keyframe before the cut")
    if first > frame / 2:
        # The seek landed past the start (a container without a keyframe index, such as
        # MPEG-TS): the frames before ``first`` are missing, not absent from the source.
        raise SmartCutFallback("smart_cut_failed", "the fetched range starts after the cut")

    keyframe_index = next(
        (index for index, packet in enumerate(packets) if packet.keyframe and first <= packet.time < end), None
    )
    copied = 0 if keyframe_index is None else _clean_copy_length(packets, keyframe_index, end, frame)
    if copied == 0:
        return CutPlan(listing.time_base, frame, frame_count, (Segment(first, end, copied=False),), 0, 0, 0)

    copy_start = packets[keyframe_index].time
    copy_end = copy_start + copied * frame
    segments = [Segment(first, copy_start, copied=False)] if copy_start > first else []
    segments.append(Segment(copy_start, copy_end, copied=True))
    if copy_end < end:
        segments.append(Segment(copy_end, end, copied=False))
    decode_delay = max(
        order - int((packet.time - copy_start) / frame)
        for order, packet in enumerate(packets[keyframe_index : keyframe_index + copied])
    )
    return CutPlan(listing.time_base, frame, frame_count, tuple(segments), keyframe_index, copied, decode_delay)


def _clean_copy_length(packets: tuple[VideoPacket, ...], start_index: int, end: Fraction, frame: Fraction) -> int:
    """How many packets from ``start_index`` (a keyframe) can be copied and end the clip cleanly.

    n packets qualify when, in decode order, they are the n earliest frames from the
    keyframe on: none refers to a frame left out, and none is shown out of place.
    A packet shown before the keyframe (an open GOP's leading frame) or after the end
    stops the search, since every longer run would contain it.
    """
    copy_start = packets[start_index].time
    latest = copy_start
    clean = 0
    for count, packet in enumerate(packets[start_index:], start=1):
        if not copy_start <= packet.time < end:
            break
        latest = max(latest, packet.time)
        if latest == copy_start + (count - 1) * frame:
            clean = count
    return clean


def h264_profile_and_level(annex_b: bytes) -> tuple[int, int] | None:
    """profile_idc and level_idc of the first SPS in an Annex-B H.264 packet.

    They are the SPS's first bytes after the NAL header, before any variable-length field.
    """
    for nal in annex_b.split(b"\x00\x00\x01")[1:]:
        if len(nal) >= 4 and nal[0] & 0x1F == 7:
            return nal[1], nal[3]
    return None


class SmartCutter:
    """Cuts H.264 sources at any frame, re-encoding only around the cut points."""

    def __init__(self, ffmpeg: str, threads: int, access: SourceAccess) -> None:
        self._ffmpeg = ffmpeg
        self._threads = threads
        self._access = access

    def cut(
        self, request: ClipRequest, source: SourceInfo, output: Path, on_progress: ProgressCallback, deadline: Deadline
    ) -> CutPlan:
        """Write ``request``'s range of ``source`` to ``output`` (MP4) and return how it was cut.

        Raises:
            SmartCutFallback: the source or this range cannot be smart-cut; nothing is left at ``output``.
            ClipTimeoutError: the runs passed the ``deadline``.
            SourceNotAllowedError, SourceNotFoundError, SourceUnreachableError: fetching the source failed.
        """
        if source.video_codec != "h264":
            raise SmartCutFallback("smart_cut_unsupported_codec", f"video codec {source.video_codec}")
        with tempfile.TemporaryDirectory(prefix="smart-cut-", dir=output.parent) as scratch:
            parts = Path(scratch)
            listing, encoder = self._fetch(request, source, parts, on_progress, deadline)
            plan = plan_cut(listing, request.duration_seconds)
            self._encode_and_copy(plan, encoder, source.has_audio, parts, deadline)
            on_progress(_ENCODE_DONE)
            try:
                self._join(plan, source, parts, output, deadline)
                on_progress(_JOIN_DONE)
                self._validate(plan, output, parts, deadline)
            except Exception:
                output.unlink(missing_ok=True)
                raise
        return plan

    def _fetch(
        self, request: ClipRequest, source: SourceInfo, parts: Path, on_progress: ProgressCallback, deadline: Deadline
    ) -> tuple[PacketListing, list[str]]:
        """Copy the range to ``parts``; return its packet listing and the head's encoder options."""
        length = f"{request.duration_seconds + _FETCH_MARGIN_SECONDS:.6f}"
        shift = ["-t", length, "-output_ts_offset", str(_LOCAL_COPY_OFFSET_SECONDS)]
        outputs = [
            *shift, "-map", "0:v:0", *(["-map", "0:a:0"] if source.has_audio else []),
            "-c", "copy", "-f", "nut", str(parts / "fetched.nut"),
            *shift, "-map", "0:v:0", "-c", "copy", "-f", "framecrc", str(parts / "packets.txt"),
            "-map", "0:v:0", "-c", "copy", "-bsf:v", "h264_mp4toannexb", "-frames:v", "1",
            "-f", "h264", str(parts / "keyframe.h264"),
        ]  # fmt: skip

        def report(seconds: float) -> None:
            on_progress(_FETCH_DONE * min(seconds / request.duration_seconds, 1.0))

        with self._access.fetch(request.source_url, request.source_key is not None) as fetch:
            arguments = [*fetch.options, "-ss", f"{request.start_seconds:.6f}", "-i", fetch.location, *outputs]
            run = run_ffmpeg(self._ffmpeg, arguments, deadline.remaining(), report)
            fetch.raise_failure()
        if run.timed_out:
            raise deadline.exceeded()
        if run.returncode != 0:
            classify_fetch_error(run.stderr, request.source_url)
            raise SmartCutFallback("smart_cut_failed", f"fetching the range failed: {last_stderr_line(run.stderr)}")
        listing = parse_packet_listing(
            (parts / "packets.txt").read_text(), origin_seconds=Fraction(_LOCAL_COPY_OFFSET_SECONDS)
        )
        return listing, self._matching_encoder((parts / "keyframe.h264").read_bytes())

    def _matching_encoder(self, keyframe: bytes) -> list[str]:
        """libx264 options for frames that sit in the source's stream: same profile and level.

        No ``-pix_fmt``: ffmpeg hands x264 the decoder's own format (x264 takes all that
        H.264 decodes to). No B-frames: the head then needs no decode delay of its own,
        so the copy's delay holds for the joined stream.
        """
        found = h264_profile_and_level(keyframe)
        if found is None or found[0] not in _X264_PROFILES:
            raise SmartCutFallback("smart_cut_unsupported_codec", f"H.264 profile_idc {found and found[0]}")
        profile, level = found
        return [
            "-c:v", "libx264", *X264_QUALITY_OPTIONS, "-profile:v", _X264_PROFILES[profile], "-level:v", str(level),
            "-bf", "0", "-fps_mode", "passthrough", *self._thread_options(),
        ]  # fmt: skip

    def _encode_and_copy(
        self, plan: CutPlan, encoder: list[str], has_audio: bool, parts: Path, deadline: Deadline
    ) -> None:
        fetched = local_file_fetch(parts / "fetched.nut")
        offset = _LOCAL_COPY_OFFSET_SECONDS
        half_frame = plan.frame_duration / 2
        inputs = [*fetched.options, "-i", fetched.location]
        input_count = 1
        outputs: list[str] = []
        # By default the encoder counts in whole frames, which rounds the shift below by up to
        # a frame (at 30000/1001 fps); the source's time base holds every frame time exactly.
        time_base = f"{plan.time_base.numerator}/{plan.time_base.denominator}"
        for number, segment in enumerate(plan.segments):
            # Each part is an ordinary MP4 whose first frame is shown at 0, all in the source's
            # time base: the concat demuxer takes every part's timestamps in the first part's.
            part = [
                "-output_ts_offset", _seconds(-(segment.start + offset)),
                "-video_track_timescale", str(plan.time_base.denominator),
                "-f", "mp4", str(parts / f"part{number}.mp4"),
            ]  # fmt: skip
            if segment.copied:
                last = plan.first_copied_packet + plan.copied_frames - 1
                picked = rf"noise=drop=not(between(n\,{plan.first_copied_packet}\,{last}))"
                outputs += ["-map", "0:v:0", "-c", "copy", "-bsf:v", picked, *part]
                continue
            # Each encoded part decodes from its own seek, to the keyframe before its first
            # frame; aiming half a frame in keeps a rounded target from landing a GOP early.
            inputs += [
                *fetched.options, "-seek_timestamp", "1", "-noaccurate_seek",
                "-ss", _seconds(segment.start + half_frame + offset), "-i", fetched.location,
            ]  # fmt: skip
            frames = (
                f"trim=start={_seconds(segment.start - half_frame + offset)}"
                f":end={_seconds(segment.end - half_frame + offset)}"
            )
            outputs += ["-map", f"{input_count}:v:0", "-vf", frames, *encoder, "-enc_time_base:v", time_base, *part]
            input_count += 1
        if has_audio:
            # Re-encoded rather than copied: AAC packets are 1024 samples (64 ms at 16 kHz), so
            # a copy starts and ends only that closely, off the video by up to a packet and
            # past the one-frame length check. Decoding lets atrim cut at the very samples
            # where the clip's first frame starts and its last ends, and costs little next to
            # the video (about 10 ms of CPU per second of audio here).
            span = (
                f"atrim=start={_seconds(plan.first_frame + offset)}"
                f":end={_seconds(plan.first_frame + plan.frame_count * plan.frame_duration + offset)}"
            )
            # Timed from the clip's first frame, not from the first sample: audio that starts
            # later than the picture keeps its offset, and aresample fills the gap with silence.
            clip_start = f"{_seconds(plan.first_frame + offset)}"
            audio_filters = f"{span},asetpts=PTS-{clip_start}/TB,aresample=async=1:first_pts=0"
            outputs += ["-map", "0:a:0", "-af", audio_filters, *AAC_OPTIONS,
                        "-f", "mp4", str(parts / "audio.m4a")]  # fmt: skip
        # -copyts keeps the local copy's timestamps, which the trims above are written in.
        self._run_local(["-copyts", *inputs, *outputs], "encoding the cut's parts", deadline)

    def _join(self, plan: CutPlan, source: SourceInfo, parts: Path, output: Path, deadline: Deadline) -> None:
        listing = ["ffconcat version 1.0"]
        for number, segment in enumerate(plan.segments):
            listing += [f"file part{number}.mp4", f"duration {_seconds(segment.end - segment.start)}"]
        (parts / "parts.ffconcat").write_text("\n".join(listing) + "\n")
        concat = local_file_fetch(parts / "parts.ffconcat")
        audio = local_file_fetch(parts / "audio.m4a") if source.has_audio else None
        # The parts lost the source's display matrix on the way; a phone's portrait video needs it back.
        rotation = ["-display_rotation", f"{source.rotation_degrees:g}"] if source.rotation_degrees else []
        # The output's time base is the source's, so every frame lasts a whole number of ticks.
        ticks_per_second = plan.time_base.denominator
        ticks_per_frame = int(plan.frame_duration * ticks_per_second)
        # setts takes a PTS from the new DTS unless told to keep it.
        retimed = (
            f"setts=pts=PTS:dts=(N-{plan.decode_delay})*{ticks_per_frame}"
            f":time_base=1/{ticks_per_second}:prescale=1"
        )
        self._run_local(
            [
                *concat.options, *rotation, "-f", "concat", "-i", concat.location,
                *([*audio.options, "-i", audio.location] if audio else []),
                "-map", "0:v:0", *(["-map", "1:a:0"] if audio else []),
                "-c", "copy", "-bsf:v", retimed, "-video_track_timescale", str(ticks_per_second),
                "-movflags", "+faststart", "-f", "mp4", str(output),
            ],  # fmt: skip
            "joining the cut's parts",
            deadline,
        )

    def _validate(self, plan: CutPlan, output: Path, parts: Path, deadline: Deadline) -> None:
        """Check the MP4 holds the planned frames in order and decodes cleanly across each seam.

        Raises:
            SmartCutFallback: it does not.
        """
        clip = local_file_fetch(output)
        seam_inputs: list[str] = []
        seam_outputs: list[str] = []
        for number, seam in enumerate(plan.seams, start=1):
            # From the keyframe before the seam's previous frame to a few frames past it.
            seam_inputs += [
                *clip.options, "-ss", _seconds(max(seam - plan.frame_duration, Fraction(0))),
                "-t", _seconds(plan.frame_duration * (_SEAM_CHECK_FRAMES + 1)), "-i", clip.location,
            ]  # fmt: skip
            seam_outputs += ["-map", f"{number}:v:0", "-f", "null", "-"]
        listing = parts / "joined.txt"
        run = self._run_local(
            ["-v", "error", *clip.options, "-i", clip.location, *seam_inputs,
             "-map", "0:v:0", "-c", "copy", "-f", "framecrc", str(listing), *seam_outputs],
            "checking the joined clip",
            deadline,
        )  # fmt: skip
        if run.stderr.strip():
            errors = run.stderr.strip()[-300:]
            raise SmartCutFallback("smart_cut_failed", f"the joined clip decodes with errors: {errors}")
        joined = parse_packet_listing(listing.read_text()).packets
        planned = [index * plan.frame_duration for index in range(plan.frame_count)]
        if sorted(packet.time for packet in joined) != planned:
            raise SmartCutFallback("smart_cut_failed", "the joined clip's frames are not the planned ones")
        if any(later.decode_time <= earlier.decode_time for earlier, later in pairwise(joined)):
            raise SmartCutFallback("smart_cut_failed", "the joined clip's decoding times do not rise")

    def _run_local(self, arguments: list[str], what: str, deadline: Deadline) -> FfmpegRun:
        run = run_ffmpeg(self._ffmpeg, arguments, deadline.remaining())
        if run.timed_out:
            raise deadline.exceeded()
        if run.returncode != 0:
            raise SmartCutFallback("smart_cut_failed", f"{what} failed: {last_stderr_line(run.stderr)}")
        return run

    def _thread_options(self) -> list[str]:
        return ["-threads", str(self._threads)] if self._threads else []


def _seconds(value: Fraction) -> str:
    return f"{float(value):.6f}"
