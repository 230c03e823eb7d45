// Wires the console together. Each module owns one part of the page; this file only
// connects their callbacks and loads the configuration.
import { loadConfig } from "./api.js";
import { initCreate } from "./create.js";
import { initErrors, showError } from "./errors.js";
import { initJobPanel } from "./job.js";
import { initJobsList } from "./jobs_list.js";
import { getKey, initKey } from "./key.js";
import { initOptions } from "./options.js";
import { initPlayer } from "./player.js";
import { initResults } from "./results.js";
import { initStylePreview } from "./style_preview.js";

initErrors();
// Started first: API calls wait for it, and fail without it, so the key goes to no other host.
const config = loadConfig();

const player = initPlayer();
initOptions();
initStylePreview(player.video);

const results = initResults();
let panel = null;
const jobs = initJobsList({ onOpen: (job) => panel.open(job, { fresh: true }) });
panel = initJobPanel({ results, onStatusChange: () => jobs.reload() });

// Another key sees other jobs: what the last one showed goes, and so does its upload.
const create = initCreate({ player, panel, jobs });
const forgetKeyState = () => {
  panel.close();
  jobs.clear();
  create.forgetUpload();
};
initKey({
  onSaved: () => {
    forgetKeyState();
    jobs.loadFirst();
  },
  onForgotten: forgetKeyState,
});

config.catch(showError);
if (getKey()) jobs.loadFirst();
