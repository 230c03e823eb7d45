// "Create job": upload the chosen file if there is one, then POST the job and watch it.
import { createJob, uploadFile } from "./api.js";
import { byId, setText } from "./dom.js";
import { ApiError, clearError, showError } from "./errors.js";
import { getKey } from "./key.js";
import { readOptions } from "./options.js";

export function initCreate({ player, panel, jobs }) {
  const button = byId("create-job");
  const status = byId("create-status");
  // The last upload, reused while it is stored: cutting a second clip from the same file
  // must not send it again.
  // An upload belongs to the key that made it, so it is reused only under that key.
  let uploaded = null; // {file, key, sourceKey, until}

  async function sourceKeyFor(file) {
    const key = getKey();
    if (uploaded && uploaded.file === file && uploaded.key === key && Date.now() < uploaded.until) {
      return uploaded.sourceKey;
    }
    setText(status, "Uploading…");
    const upload = await uploadFile(file);
    const until = Date.parse(upload.uploadExpiresAt) - 60000; // a minute's margin for the job to start
    uploaded = { file, key, sourceKey: upload.sourceKey, until: Number.isNaN(until) ? 0 : until };
    return upload.sourceKey;
  }

  button.addEventListener("click", async () => {
    if (!getKey()) {
      // Said before anything else, even before a missing source: nothing works without it.
      showError(new ApiError("NO_API_KEY", "No API key: paste one above and press Save."));
      return;
    }
    const source = player.getSource();
    if (!source) {
      showError(new ApiError("NO_SOURCE", "Load a media URL or choose a file first."));
      return;
    }
    button.disabled = true;
    try {
      const body = source.kind === "file" ? { sourceKey: await sourceKeyFor(source.file) } : { sourceUrl: source.url };
      const { start, end } = player.getRange();
      Object.assign(body, { start, end }, readOptions());
      setText(status, "Creating job…");
      const job = await createJob(body);
      clearError();
      panel.open(job);
      jobs.loadFirst(); // the new job heads the first page
    } catch (error) {
      // An upload the API no longer takes (removed, refused) is sent again next time.
      if (String(error.code).startsWith("UPLOAD_")) uploaded = null;
      showError(error);
    } finally {
      button.disabled = false;
      setText(status, "");
    }
  });

  return {
    forgetUpload() {
      uploaded = null;
    },
  };
}
