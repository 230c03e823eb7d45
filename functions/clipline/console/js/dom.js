// Tiny DOM helpers. Everything here puts text in as text nodes and never parses HTML,
// so job data (file names, URLs, subtitles, error messages) can never become markup.

/** The element with this id; a missing one is a bug in index.html, so fail loudly. */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`index.html has no #${id}`);
  return node;
}

/**
 * A new element: el("li", {class: "cue", data: {start: 1.5}}, "text", otherNode).
 * Attribute values and children are always text; null/undefined/false are skipped,
 * which keeps optional parts of a row a one-liner.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "style" || /^on/i.test(name)) {
      // The CSP forbids inline style and handlers; refuse them here so nobody tries.
      throw new Error(`el(): attribute ${name} is not allowed`);
    }
    if (name === "class") node.className = value;
    else if (name === "data") {
      for (const [key, v] of Object.entries(value)) node.dataset[key] = String(v);
    } else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace a node's content with plain text. */
export function setText(node, text) {
  node.textContent = text === null || text === undefined ? "" : String(text);
}

/** Show or hide with the hidden attribute (console.css makes [hidden] win over display rules). */
export function show(node, visible) {
  node.hidden = !visible;
}

/** The URL if it is http(s) or blob, else null: a job's data must not make a javascript: link. */
export function safeUrl(url) {
  try {
    const parsed = new URL(url, location.href);
    return ["http:", "https:", "blob:"].includes(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}
