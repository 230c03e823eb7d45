"""The encoder settings every re-encode shares: a smart cut's head, a full re-encode and a burn-in look alike."""

X264_QUALITY_OPTIONS = ["-preset", "veryfast", "-crf", "20"]
# H.264 in the pixel format every player decodes.
H264_VIDEO_OPTIONS = ["-c:v", "libx264", *X264_QUALITY_OPTIONS, "-pix_fmt", "yuv420p"]
AAC_OPTIONS = ["-c:a", "aac", "-b:a", "160k"]
