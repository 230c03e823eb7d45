// The running job panel (#job): polls the job once a second until it ends, renders its
// status, progress and events, and hands a succeeded job to the results panel.
import { deleteJob, getJob } from "./api.js";
import { byId, el, setText, show } from "./dom.js";
import { clearError, showError } from "./errors.js";
import { clockTime, formatSeconds } from "./timecode.js";

const POLL_MS = 1000;
const ACTIVE = new Set(["queued", "running"]);
const TERMINAL = new Set(["succeeded", "failed", "cancelled", "deleted"]);

export function sourceText(request) {
  if (!request) return "";
  return request.sourceUrl || (request.sourceKey ? "upload" : "");
}

function eventItem(event) {
  const failed = event.type === "jobFailed" || event.state === "failed" || Boolean(event.code);
  const retry = Number(event.attempt) > 1;
  const classes = ["job-event", failed && "failed", retry && "retry"].filter(Boolean).join(" ");
  const hasDuration = event.durationSeconds !== null && event.durationSeconds !== undefined;
  return el(
    "li",
    { class: classes },
    el("time", { class: "event-time", datetime: event.at }, clockTime(event.at)),
    el("span", { class: "event-type" }, event.type),
    event.stage && el("span", { class: "event-stage" }, event.stage),
    event.state && el("span", { class: "event-state" }, event.state),
    retry && el("span", { class: "event-attempt" }, `attempt ${event.attempt}`),
    hasDuration && el("span", { class: "event-duration" }, `${formatSeconds(event.durationSeconds)} s`),
    event.code && el("span", { class: "event-code" }, event.code),
    event.message && el("span", { class: "event-message" }, event.message),
  );
}

export function initJobPanel({ results, onStatusChange }) {
  const panel = byId("job");
  const status = byId("job-status");
  const cancel = byId("cancel-job");
  const jobError = byId("job-error");

  let job = null;
  let generation = 0; // bumped whenever answers in flight must be ignored (another job, a cancel)
  let timer = null;

  function render() {
    show(panel, true);
    show(byId("job-empty"), false);
    setText(byId("job-id"), job.id);
    setText(status, job.status);
    status.className = `status status-${job.status}`;
    setText(byId("job-stage"), job.stage);
    setText(byId("job-source"), sourceText(job.request));
    byId("job-progress").value = Number(job.progress) || 0;
    cancel.disabled = !ACTIVE.has(job.status);
    setText(jobError, job.error ? `${job.error.code}: ${job.error.message}` : "");
    show(jobError, Boolean(job.error));
    byId("job-events").replaceChildren(...(job.events || []).map(eventItem));
  }

  function stop() {
    generation += 1;
    clearTimeout(timer);
    timer = null;
  }

  // A new state of the watched job: render it, react to a status change, keep polling while it runs.
  function apply(next, { first = false } = {}) {
    const before = job && job.status;
    job = next;
    render();
    if (first || job.status !== before) {
      if (job.status === "succeeded") results.show(job);
      if (!first) onStatusChange(job);
    }
    if (!TERMINAL.has(job.status)) schedule();
  }

  function schedule() {
    const mine = generation;
    clearTimeout(timer);
    timer = setTimeout(() => poll(mine), POLL_MS);
  }

  async function poll(mine) {
    try {
      const next = await getJob(job.id);
      if (mine === generation) apply(next);
    } catch (error) {
      if (mine !== generation) return;
      showError(error);
      // A refusal (gone, forbidden, no key) will not change by asking again; a hiccup may.
      const permanent = error.code === "NO_API_KEY" || (error.status >= 400 && error.status < 500 && error.status !== 429);
      if (!permanent) schedule();
    }
  }

  /** Watch a job; fresh: false when `initial` just came from the API (a create), true for a list row. */
  function open(initial, { fresh = false } = {}) {
    stop();
    results.reset();
    job = null;
    apply(initial, { first: true });
    if (fresh) {
      clearTimeout(timer);
      poll(generation);
    }
  }

  cancel.addEventListener("click", async () => {
    const current = job;
    stop(); // a poll answer still on its way must not undo the cancel
    cancel.disabled = true;
    try {
      // DELETE of an ended job deletes its results: ask first, so that a job which ended
      // since the last poll is shown as it ended, not destroyed.
      const latest = await getJob(current.id);
      if (job !== current) return; // another job was opened meanwhile
      if (!ACTIVE.has(latest.status)) {
        apply(latest);
        return;
      }
      const next = await deleteJob(current.id);
      clearError();
      if (job !== current) return;
      // 204: it ended in the moment between the two calls, and its files went with the DELETE.
      apply(next || (await getJob(current.id)));
    } catch (error) {
      showError(error);
      if (job === current) apply(current);
    }
  });

  /** Stop watching and hide the panel and results: the key that could read them is gone. */
  function close() {
    stop();
    job = null;
    results.reset();
    show(panel, false);
    show(byId("job-empty"), true);
  }

  return { open, close, currentId: () => job && job.id };
}
