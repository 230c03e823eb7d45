// The results panel (#results) of a succeeded job: the clip with its transcript as a
// subtitle track, the burned-in version, download links, and a clickable transcript.
import { fetchText, getResult } from "./api.js";
import { byId, el, safeUrl, setText, show } from "./dom.js";
import { showError } from "./errors.js";
import { formatCueTime } from "./timecode.js";

// The cue's words as plain text. getCueAsHTML() decodes WebVTT's escapes (&lt; is "<")
// into detached nodes; only their text is used, so nothing in a cue can become markup.
function cueText(cue) {
  return typeof cue.getCueAsHTML === "function" ? cue.getCueAsHTML().textContent : cue.text;
}

const fileName = (key) => String(key || "").split("/").pop();

export function initResults() {
  const section = byId("results");
  const clip = byId("result-clip");
  const burned = byId("result-burned");
  const links = byId("artifact-links");
  const transcript = byId("transcript");
  const note = byId("results-note");

  let generation = 0; // answers for a job no longer shown are dropped
  let trackUrl = null;
  let items = []; // [{cue, li}] of the transcript

  function clearVideo(video) {
    video.pause();
    for (const track of video.querySelectorAll("track")) track.remove();
    video.removeAttribute("src");
    video.load(); // really drop the old media
  }

  function reset() {
    generation += 1;
    show(section, false);
    clearVideo(clip);
    clearVideo(burned);
    show(burned, false);
    show(byId("burned-figure"), false);
    show(note, false);
    links.replaceChildren();
    setText(byId("results-expiry"), "");
    transcript.replaceChildren();
    show(transcript, false);
    items = [];
    if (trackUrl) URL.revokeObjectURL(trackUrl);
    trackUrl = null;
  }

  function renderCues(cues) {
    items = Array.from(cues || [], (cue) => {
      const button = el(
        "button",
        { type: "button", data: { start: cue.startTime } },
        el("span", { class: "cue-time" }, `${formatCueTime(cue.startTime)} → ${formatCueTime(cue.endTime)}`),
        el("span", { class: "cue-text" }, cueText(cue)),
      );
      button.addEventListener("click", () => {
        clip.currentTime = cue.startTime;
        clip.play().catch(() => {}); // a refused play still leaves the clip at the cue
      });
      return { cue, li: el("li", { class: "cue" }, button) };
    });
    transcript.replaceChildren(...items.map((item) => item.li));
    show(transcript, items.length > 0);
    highlight();
  }

  function highlight() {
    const t = clip.currentTime;
    for (const { cue, li } of items) li.classList.toggle("active", t >= cue.startTime && t < cue.endTime);
  }

  // The VTT is fetched and handed to the track as a blob: a same-origin URL, so the
  // cross-origin rules for <track> do not apply to an artifact on another host.
  async function addTranscript(artifact, job, mine) {
    let text;
    try {
      text = await fetchText(artifact.url);
    } catch (error) {
      if (mine === generation) showError(error);
      return;
    }
    if (mine !== generation) return;
    trackUrl = URL.createObjectURL(new Blob([text], { type: "text/vtt" }));
    const track = el("track", {
      kind: "subtitles",
      label: "Transcript",
      srclang: (job.request && job.request.language) || "en",
      default: true,
      src: trackUrl,
    });
    track.addEventListener("load", () => {
      if (mine === generation) renderCues(clip.textTracks[0] && clip.textTracks[0].cues);
    });
    clip.append(track);
    track.track.mode = "showing"; // also starts loading it
  }

  async function display(job) {
    reset();
    const mine = generation;
    let result;
    try {
      result = await getResult(job.id);
    } catch (error) {
      if (mine === generation) showError(error);
      return;
    }
    if (mine !== generation) return;
    const artifacts = result.artifacts || [];
    const byName = new Map(artifacts.map((artifact) => [artifact.name, artifact]));

    const clipUrl = byName.has("clip") && safeUrl(byName.get("clip").url);
    if (clipUrl) clip.src = clipUrl;
    const burnedUrl = byName.has("burned") && safeUrl(byName.get("burned").url);
    if (burnedUrl) burned.src = burnedUrl;
    show(burned, Boolean(burnedUrl));
    show(byId("burned-figure"), Boolean(burnedUrl));

    links.replaceChildren(
      ...artifacts.map((artifact) =>
        el("li", {}, el("a", { download: true, href: safeUrl(artifact.url), data: { artifact: artifact.name } },
          `${artifact.name} — ${fileName(artifact.key)}`)),
      ),
    );
    if (result.expiresAt) setText(byId("results-expiry"), `Links work until ${new Date(result.expiresAt).toLocaleString()}; open the job again for fresh ones.`);
    show(section, true);

    if (byName.has("vtt")) await addTranscript(byName.get("vtt"), job, mine);
  }

  clip.addEventListener("timeupdate", highlight);
  clip.addEventListener("seeked", highlight);
  for (const video of [clip, burned]) {
    video.addEventListener("error", () => {
      if (!video.getAttribute("src")) return; // the reset's empty src, not a real failure
      // Not shown as an API error: the links still work even when this browser cannot play them.
      setText(note, "The browser cannot play a result here (or its link expired); the download links below still work.");
      show(note, true);
    });
  }

  return { show: display, reset };
}
