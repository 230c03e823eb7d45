// The job list (#jobs): a page of ten, newest first, filtered by status; a row opens its job.
import { listJobs } from "./api.js";
import { byId, el, show } from "./dom.js";
import { clearError, showError } from "./errors.js";
import { sourceText } from "./job.js";
import { formatSeconds } from "./timecode.js";

const shortId = (id) => String(id || "").slice(0, 8);

function createdText(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString();
}

export function initJobsList({ onOpen }) {
  const status = byId("jobs-status");
  const body = byId("jobs-table").tBodies[0];
  const next = byId("jobs-next");
  const first = byId("jobs-first");

  let cursor = null; // this page's cursor; null is the first page
  let nextCursor = null;
  let generation = 0; // only the latest request's answer is shown
  let wanted; // the page a load in flight asks for: a refresh meanwhile asks for it too

  function row(job) {
    const request = job.request || {};
    const tr = el(
      "tr",
      { class: "job-row", tabindex: 0, data: { jobId: job.id }, title: `Open job ${job.id}` },
      el("td", {}, createdText(job.createdAt)),
      el("td", { class: "mono" }, shortId(job.id)),
      el("td", { class: `status-${job.status}` }, job.status),
      el("td", { class: "source-cell" }, sourceText(request)),
      el("td", {}, `${formatSeconds(request.startSeconds)}–${formatSeconds(request.endSeconds)} s`),
    );
    tr.addEventListener("click", () => onOpen(job));
    tr.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        onOpen(job);
      }
    });
    return tr;
  }

  async function load(pageCursor, { fromUser = false } = {}) {
    const mine = ++generation;
    wanted = pageCursor;
    let page;
    try {
      page = await listJobs({ status: status.value === "all" ? undefined : status.value, cursor: pageCursor || undefined });
    } catch (error) {
      if (mine === generation) showError(error);
      return;
    }
    if (mine !== generation) return;
    wanted = undefined;
    if (fromUser) clearError(); // automatic refreshes leave the user's last error in place
    cursor = pageCursor;
    nextCursor = page.nextCursor || null;
    const jobs = page.jobs || [];
    body.replaceChildren(
      ...(jobs.length ? jobs.map(row) : [el("tr", { class: "empty" }, el("td", { colspan: 5 }, "No jobs."))]),
    );
    show(next, Boolean(nextCursor));
    show(first, Boolean(cursor));
  }

  status.addEventListener("change", () => load(null, { fromUser: true }));
  byId("jobs-refresh").addEventListener("click", () => load(cursor, { fromUser: true }));
  next.addEventListener("click", () => load(nextCursor, { fromUser: true }));
  first.addEventListener("click", () => load(null, { fromUser: true }));

  return {
    loadFirst: () => load(null),
    // A refresh that the watched job's end sets off must not undo the user's Next or filter in flight.
    reload: () => load(wanted === undefined ? cursor : wanted),
    clear() {
      generation += 1;
      wanted = undefined;
      cursor = null;
      nextCursor = null;
      body.replaceChildren();
      show(next, false);
      show(first, false);
    },
  };
}
