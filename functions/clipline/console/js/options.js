// The job options form: read into the API's request fields.
import { byId } from "./dom.js";

function number(id, fallback, { integer = false } = {}) {
  const value = Number(byId(id).value);
  if (byId(id).value.trim() === "" || !Number.isFinite(value)) return fallback;
  return integer ? Math.round(value) : value; // out-of-range values go to the API, which says what is allowed
}

/** The subtitle style, in the API's units (pixels of a 1080-line frame). */
export function readStyle() {
  return {
    fontSize: number("font-size", 54, { integer: true }),
    primaryColour: byId("primary-colour").value.toUpperCase(),
    outlineColour: byId("outline-colour").value.toUpperCase(),
    outlineWidth: number("outline-width", 3),
    marginVertical: number("margin-vertical", 60, { integer: true }),
    position: byId("position").value,
  };
}

/** The option fields of a POST api/jobs body. */
export function readOptions() {
  const burnSubtitles = byId("burn-subtitles").checked;
  const language = byId("language").value.trim();
  return {
    accuracy: byId("accuracy").value,
    transcribe: byId("transcribe").checked,
    ...(language ? { language } : {}),
    burnSubtitles,
    ...(burnSubtitles ? { subtitleStyle: readStyle() } : {}),
  };
}

export function initOptions() {
  // Burned-in subtitles come from the transcript, so burning implies transcribing.
  byId("burn-subtitles").addEventListener("change", (event) => {
    if (event.target.checked) byId("transcribe").checked = true;
  });
  // ... and no transcript means nothing to burn in.
  byId("transcribe").addEventListener("change", (event) => {
    if (!event.target.checked) byId("burn-subtitles").checked = false;
    byId("burn-subtitles").dispatchEvent(new Event("change")); // the style preview follows
  });
}
