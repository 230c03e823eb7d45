// HTTP client for the clipline API. Every call sends the saved key as x-api-key and
// turns any failure into an ApiError, so callers only ever deal with one kind of error.
import { ApiError } from "./errors.js";
import { getKey } from "./key.js";

// Known only from config.json: without it no call is made, so the key is never sent to a
// host that is not the API (in AWS the page's own host is CloudFront, not the API).
let apiUrl = null;
let configured = null; // the promise of config.json; calls wait for it

/** Read config.json (beside index.html) for the API's base URL. */
export function loadConfig() {
  configured = (async () => {
    try {
      const response = await fetch("config.json", { cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const config = await response.json();
      // Resolved against the page, so a relative apiUrl ("/", as local mode serves) works too.
      const base = new URL(config.apiUrl, location.href).href;
      apiUrl = base.endsWith("/") ? base : `${base}/`;
    } catch (error) {
      throw new ApiError("CONFIG_ERROR", `could not read config.json (${error.message}); reload the page`);
    }
  })();
  return configured;
}

// Only a network failure (or a proxy's non-JSON page) lacks the API's error body.
async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: fall through
  }
  const error = body && body.error;
  if (error && error.code) {
    return new ApiError(error.code, error.message || "", { correlationId: error.correlationId, status: response.status });
  }
  const message = (body && body.message) || `HTTP ${response.status} ${response.statusText}`.trim();
  return new ApiError("NETWORK_ERROR", message, { status: response.status });
}

async function request(method, path, { body, query } = {}) {
  await configured?.catch(() => {}); // a failed config already showed its error
  if (!apiUrl) throw new ApiError("CONFIG_ERROR", "the API's address is unknown (config.json did not load); reload the page");
  const key = getKey();
  if (!key) throw new ApiError("NO_API_KEY", "No API key: paste one above and press Save.");
  const url = new URL(path, apiUrl);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { "x-api-key": key, accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError("NETWORK_ERROR", error.message);
  }
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return null;
  try {
    return await response.json();
  } catch (error) {
    throw new ApiError("NETWORK_ERROR", `unreadable answer: ${error.message}`, { status: response.status });
  }
}

const jobPath = (id) => `api/jobs/${encodeURIComponent(id)}`;

export const createJob = (body) => request("POST", "api/jobs", { body });
export const getJob = (id) => request("GET", jobPath(id));
export const getResult = (id) => request("GET", `${jobPath(id)}/result`);
export const deleteJob = (id) => request("DELETE", jobPath(id));
export const listJobs = ({ status, cursor } = {}) =>
  request("GET", "api/jobs", { query: { limit: 10, status, cursor } });

// Headers fetch() may not set (the browser sets or refuses them): Content-Length above all.
const FORBIDDEN = new Set([
  "accept-charset", "accept-encoding", "access-control-request-headers", "access-control-request-method",
  "connection", "content-length", "cookie", "cookie2", "date", "dnt", "expect", "host", "keep-alive",
  "origin", "referer", "set-cookie", "te", "trailer", "transfer-encoding", "upgrade", "via",
]);
const forbidden = (name) => FORBIDDEN.has(name.toLowerCase()) || /^(proxy|sec)-/i.test(name);

// Browsers leave File.type empty for some containers; the API needs audio/* or video/*.
const BY_EXTENSION = {
  mp4: "video/mp4", m4v: "video/mp4", mov: "video/quicktime", mkv: "video/x-matroska", webm: "video/webm",
  avi: "video/x-msvideo", ts: "video/mp2t", mp3: "audio/mpeg", m4a: "audio/mp4", aac: "audio/aac",
  wav: "audio/wav", flac: "audio/flac", ogg: "audio/ogg", opus: "audio/opus",
};
export function mediaType(file) {
  if (/^(audio|video)\//.test(file.type)) return file.type;
  const ext = file.name.split(".").pop().toLowerCase();
  return BY_EXTENSION[ext] || file.type || "application/octet-stream";
}

/** Ask for an upload link and PUT the file to it (maybe S3, another origin); returns the upload. */
export async function uploadFile(file) {
  const contentType = mediaType(file);
  const upload = await request("POST", "api/uploads", {
    body: { fileName: file.name, contentType, sizeBytes: file.size },
  });
  const headers = {};
  for (const [name, value] of Object.entries(upload.headers || {})) {
    if (!forbidden(name)) headers[name] = value;
  }
  // The signature covers Content-Type: send exactly the type announced above.
  if (!Object.keys(headers).some((name) => name.toLowerCase() === "content-type")) headers["Content-Type"] = contentType;
  let response;
  try {
    response = await fetch(upload.url, { method: upload.method || "PUT", headers, body: file });
  } catch (error) {
    throw new ApiError("NETWORK_ERROR", error.message);
  }
  if (!response.ok) {
    // S3 answers XML; its status line is what the user can act on.
    throw new ApiError("UPLOAD_FAILED", `the upload was refused: ${response.status} ${response.statusText}`.trim(), {
      status: response.status,
    });
  }
  return upload;
}

/** The text of an artifact link (presigned: no API key, which would also trip S3's CORS). */
export async function fetchText(url) {
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new ApiError("NETWORK_ERROR", error.message);
  }
  if (!response.ok) {
    throw new ApiError("DOWNLOAD_FAILED", `could not fetch an artifact: ${response.status} ${response.statusText}`.trim(), {
      status: response.status,
    });
  }
  return response.text();
}
