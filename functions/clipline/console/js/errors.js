// The one error banner (#error): the last failure, with the code and correlation id
// support needs to find the request in the logs.
import { byId, setText, show } from "./dom.js";

/** A failure as the API reports it: {"error": {"code", "message", "correlationId"}}. */
export class ApiError extends Error {
  constructor(code, message, { correlationId = "", status = 0 } = {}) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.correlationId = correlationId || "";
    this.status = status; // the HTTP status, 0 when there was no answer
  }
}

let shownCode = null;

export function showError(error) {
  const err = error instanceof ApiError ? error : new ApiError("UNEXPECTED_ERROR", error?.message || String(error));
  const box = byId("error");
  setText(box.querySelector(".error-code"), err.code);
  setText(box.querySelector(".error-message"), err.message);
  const correlation = box.querySelector(".error-correlation");
  setText(correlation, err.correlationId ? `correlation id: ${err.correlationId}` : "");
  show(correlation, Boolean(err.correlationId));
  show(box, true);
  shownCode = err.code;
}

/** Hide the banner; with a code, only if that is the error shown (fixing a timecode clears its own complaint). */
export function clearError(code) {
  if (code && code !== shownCode) return;
  show(byId("error"), false);
  shownCode = null;
}

export function initErrors() {
  byId("dismiss-error").addEventListener("click", () => clearError());
  // A bug must still say something on the page rather than fail silently.
  window.addEventListener("unhandledrejection", (event) => showError(event.reason));
}
