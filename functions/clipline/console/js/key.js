// The API key lives only in sessionStorage: it goes when the tab closes, and never
// reaches a URL, a cookie, localStorage or (after saving) the page's DOM.
import { byId, setText } from "./dom.js";
import { ApiError, clearError, showError } from "./errors.js";

const STORAGE_KEY = "clipline.apiKey";

export function getKey() {
  try {
    return sessionStorage.getItem(STORAGE_KEY) || "";
  } catch {
    return ""; // storage disabled: behave as if no key was saved
  }
}

export function initKey({ onSaved, onForgotten }) {
  const input = byId("api-key");
  const status = byId("key-status");
  const renderStatus = () => setText(status, getKey() ? "Key saved for this tab" : "No key");

  function save() {
    const key = input.value.trim();
    if (!key) {
      showError(new ApiError("NO_API_KEY", "Type an API key, then press Save."));
      return;
    }
    sessionStorage.setItem(STORAGE_KEY, key);
    input.value = ""; // the saved key is not left in the page
    clearError();
    renderStatus();
    onSaved();
  }

  byId("save-key").addEventListener("click", save);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") save();
  });
  byId("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(STORAGE_KEY);
    input.value = "";
    renderStatus();
    onForgotten();
  });
  renderStatus();
}
