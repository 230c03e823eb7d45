// Timecodes as the API and the inputs write them: HH:MM:SS.mmm, millisecond precision.

/** Seconds rounded to whole milliseconds, the precision the API keeps. */
export function roundMs(seconds) {
  return Math.round(seconds * 1000) / 1000;
}

const SECONDS = /^\d+(?:\.\d+)?$/;
const WHOLE = /^\d+$/;

/**
 * Seconds from "SS", "SS.mmm", "MM:SS(.mmm)" or "HH:MM:SS(.mmm)"; null when it is none of them.
 * A lone seconds value may exceed 59 ("90" is 1:30); after a colon, minutes and seconds may not.
 */
export function parseTimecode(text) {
  const parts = String(text).trim().split(":");
  if (parts.length > 3) return null;
  const last = parts.pop();
  if (!SECONDS.test(last) || !parts.every((p) => WHOLE.test(p))) return null;
  const seconds = Number(last);
  const [minutes = 0, hours = 0] = parts.map(Number).reverse();
  if (parts.length >= 1 && seconds >= 60) return null;
  if (parts.length === 2 && minutes >= 60) return null;
  const total = hours * 3600 + minutes * 60 + seconds;
  return Number.isFinite(total) ? roundMs(total) : null;
}

function pad(n, width = 2) {
  return String(n).padStart(width, "0");
}

// Whole milliseconds first, so 59.9996 s becomes 00:01:00.000 rather than 00:00:60.000.
function split(seconds) {
  const ms = Math.round(Math.max(0, Number(seconds) || 0) * 1000);
  return { h: Math.floor(ms / 3600000), m: Math.floor(ms / 60000) % 60, s: Math.floor(ms / 1000) % 60, ms: ms % 1000 };
}

/** "HH:MM:SS.mmm" */
export function formatTimecode(seconds) {
  const { h, m, s, ms } = split(seconds);
  return `${pad(h)}:${pad(m)}:${pad(s)}.${pad(ms, 3)}`;
}

/** "MM:SS.mmm" for transcript cues; minutes keep counting past an hour. */
export function formatCueTime(seconds) {
  const { h, m, s, ms } = split(seconds);
  return `${pad(h * 60 + m)}:${pad(s)}.${pad(ms, 3)}`;
}

/** "7.000" */
export function formatSeconds(seconds) {
  return (Number(seconds) || 0).toFixed(3);
}

/** Local wall-clock "HH:MM:SS" of an ISO timestamp, "" when it is not one. */
export function clockTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}
