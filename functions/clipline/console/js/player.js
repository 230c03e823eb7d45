// The source preview and the in/out range: picking by button, key or typed timecode,
// frame stepping, and the timeline bar under the player.
import { byId, setText, show } from "./dom.js";
import { ApiError, clearError, showError } from "./errors.js";
import { formatSeconds, formatTimecode, parseTimecode, roundMs } from "./timecode.js";

const DEFAULT_FRAME = 1 / 25;

// Keys are shortcuts only where typing is not what the user is doing.
const NOT_TYPING = new Set(["checkbox", "radio", "button", "submit", "reset", "range", "color", "file"]);
function isTyping(target) {
  if (!(target instanceof Element)) return false;
  if (target.isContentEditable || target.matches("textarea, select")) return true;
  return target.matches("input") && !NOT_TYPING.has(target.type);
}

export function initPlayer() {
  const video = byId("player");
  const inInput = byId("in-time");
  const outInput = byId("out-time");
  const timeline = byId("timeline");
  const range = byId("range");
  const playhead = byId("playhead");
  const note = byId("player-note");
  const fileInput = byId("source-file");
  const urlInput = byId("source-url");

  let inSec = 0;
  let outSec = 0;
  let source = null; // {kind: "url", url} | {kind: "file", file}
  let objectUrl = null;
  let frame = DEFAULT_FRAME;
  let frameSamples = [];
  let lastFrame = null; // the previous requestVideoFrameCallback metadata

  const duration = () => (Number.isFinite(video.duration) && video.duration > 0 ? video.duration : 0);
  const percent = (seconds) => (duration() ? Math.min(100, (seconds / duration()) * 100) : 0);

  function render() {
    for (const [input, seconds] of [[inInput, inSec], [outInput, outSec]]) {
      input.value = formatTimecode(seconds);
      input.dataset.seconds = formatSeconds(seconds); // for tests and scripts: no parsing needed
    }
    setText(byId("range-duration"), `${formatSeconds(outSec - inSec)} s`);
    range.style.left = `${percent(inSec)}%`;
    range.style.width = `${Math.max(0, percent(outSec) - percent(inSec))}%`;
    renderPlayhead();
  }

  function renderPlayhead() {
    playhead.style.left = `${percent(video.currentTime)}%`;
  }

  // The range never inverts: moving one end past the other drags the other along.
  function setIn(seconds) {
    inSec = roundMs(Math.max(0, seconds));
    if (inSec > outSec) outSec = inSec;
    render();
  }
  function setOut(seconds) {
    outSec = roundMs(Math.max(0, seconds));
    if (outSec < inSec) inSec = outSec;
    render();
  }

  function seek(seconds) {
    const d = duration();
    video.currentTime = Math.max(0, d ? Math.min(d, seconds) : seconds);
    renderPlayhead();
  }

  function step(direction) {
    video.pause(); // a frame step while playing would be lost at once
    seek(video.currentTime + direction * frame);
  }

  function setSource(next, mediaUrl, label) {
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = next.kind === "file" ? mediaUrl : null;
    source = next;
    inSec = 0;
    outSec = 0;
    frame = DEFAULT_FRAME;
    frameSamples = [];
    lastFrame = null;
    show(note, false);
    video.src = mediaUrl;
    setText(byId("source-label"), label);
    render();
  }

  byId("load-source").addEventListener("click", () => {
    const url = urlInput.value.trim();
    if (!url) {
      showError(new ApiError("NO_SOURCE", "Type the media URL first."));
      return;
    }
    fileInput.value = ""; // one source at a time
    setSource({ kind: "url", url }, url, url);
  });

  fileInput.addEventListener("change", () => {
    const file = fileInput.files[0];
    if (!file) return;
    const size = file.size < 1048576 ? `${Math.ceil(file.size / 1024)} KB` : `${(file.size / 1048576).toFixed(1)} MB`;
    setSource({ kind: "file", file }, URL.createObjectURL(file), `${file.name} (${size}, uploaded when you create the job)`);
  });

  video.addEventListener("loadedmetadata", () => {
    // A fresh source starts with its whole length selected; a range typed before it loaded stays.
    if (outSec === 0) outSec = roundMs(duration());
    render();
  });
  video.addEventListener("timeupdate", renderPlayhead);
  video.addEventListener("seeked", renderPlayhead);
  video.addEventListener("error", () => {
    // Not an API error: the server may well clip what this browser cannot play.
    setText(note, "This browser cannot preview the source; type the in and out times instead.");
    show(note, Boolean(source));
  });

  for (const [input, set, current] of [[inInput, setIn, () => inSec], [outInput, setOut, () => outSec]]) {
    input.addEventListener("change", () => {
      const seconds = parseTimecode(input.value);
      if (seconds === null) {
        showError(new ApiError("INVALID_TIMECODE", `"${input.value}" is not a timecode: use SS, MM:SS or HH:MM:SS, each with optional .mmm`));
        input.value = formatTimecode(current()); // keep the previous value
        return;
      }
      clearError("INVALID_TIMECODE");
      set(seconds);
    });
  }

  byId("set-in").addEventListener("click", () => setIn(video.currentTime));
  byId("set-out").addEventListener("click", () => setOut(video.currentTime));
  byId("frame-back").addEventListener("click", () => step(-1));
  byId("frame-forward").addEventListener("click", () => step(1));

  const keys = {
    i: () => setIn(video.currentTime),
    o: () => setOut(video.currentTime),
    ",": () => step(-1),
    ".": () => step(1),
    "[": () => seek(inSec),
    "]": () => seek(outSec),
  };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) return;
    const action = keys[event.key.length === 1 ? event.key.toLowerCase() : event.key];
    if (!action) return;
    event.preventDefault();
    action();
  });

  timeline.addEventListener("click", (event) => {
    const d = duration();
    if (!d) return;
    const box = timeline.getBoundingClientRect();
    seek(Math.min(1, Math.max(0, (event.clientX - box.left) / box.width)) * d);
  });

  // Learn the real frame rate while playing: consecutive presented frames differ by one
  // frame's media time. The median ignores the odd dropped frame.
  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
    const onFrame = (_now, meta) => {
      if (lastFrame && !video.paused && meta.presentedFrames - lastFrame.presentedFrames === 1) {
        const delta = meta.mediaTime - lastFrame.mediaTime;
        if (delta > 0.004 && delta < 0.25) {
          frameSamples = [...frameSamples.slice(-14), delta];
          if (frameSamples.length >= 5) frame = [...frameSamples].sort((a, b) => a - b)[frameSamples.length >> 1];
        }
      }
      lastFrame = meta;
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  // A URL typed after the last Load is what the user means now: the loaded one no longer counts.
  urlInput.addEventListener("input", () => {
    if (source && source.kind === "url" && source.url !== urlInput.value.trim()) source = null;
  });
  render();
  return {
    video,
    getRange: () => ({ start: inSec, end: outSec }),
    // What was loaded last; a typed URL that was never loaded still counts.
    getSource: () => source || (urlInput.value.trim() ? { kind: "url", url: urlInput.value.trim() } : null),
  };
}
