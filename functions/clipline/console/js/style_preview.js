// A live preview of the burned-in subtitle style, drawn over the source player at the
// scale the server will use: style values are pixels of a 1080-line frame.
import { byId, show } from "./dom.js";
import { readStyle } from "./options.js";

const STYLE_FIELDS = ["burn-subtitles", "font-size", "primary-colour", "outline-colour", "outline-width", "margin-vertical", "position"];

// An outline as a ring of sharp shadows: unlike -webkit-text-stroke it grows outwards
// and leaves the letters' fill alone, as the burned-in outline does.
function outline(width, colour) {
  if (width < 0.25) return "none";
  const shadows = [];
  for (let i = 0; i < 16; i += 1) {
    const angle = (i / 16) * 2 * Math.PI;
    shadows.push(`${(Math.cos(angle) * width).toFixed(2)}px ${(Math.sin(angle) * width).toFixed(2)}px 0 ${colour}`);
  }
  return shadows.join(", ");
}

export function initStylePreview(video) {
  const preview = byId("style-preview");
  const text = preview.querySelector(".preview-text");
  const burn = byId("burn-subtitles");

  // The picture's box inside the element: a video that does not fill it is letterboxed.
  function pictureBox() {
    const width = video.clientWidth;
    const height = video.clientHeight;
    const { videoWidth, videoHeight } = video;
    if (!videoWidth || !videoHeight || !width || !height) return { left: 0, top: 0, width, height };
    const scale = Math.min(width / videoWidth, height / videoHeight);
    return {
      left: (width - videoWidth * scale) / 2,
      top: (height - videoHeight * scale) / 2,
      width: videoWidth * scale,
      height: videoHeight * scale,
    };
  }

  function update() {
    show(preview, burn.checked);
    if (!burn.checked) return;
    const style = readStyle();
    const box = pictureBox();
    const k = box.height / 1080;
    preview.style.left = `${video.offsetLeft + box.left}px`;
    preview.style.top = `${video.offsetTop + box.top}px`;
    preview.style.width = `${box.width}px`;
    preview.style.height = `${box.height}px`;
    preview.style.justifyContent = style.position === "top" ? "flex-start" : "flex-end";
    preview.style.paddingTop = style.position === "top" ? `${style.marginVertical * k}px` : "0";
    preview.style.paddingBottom = style.position === "top" ? "0" : `${style.marginVertical * k}px`;
    text.style.fontSize = `${style.fontSize * k}px`;
    text.style.color = style.primaryColour;
    text.style.textShadow = outline(style.outlineWidth * k, style.outlineColour);
  }

  for (const id of STYLE_FIELDS) {
    byId(id).addEventListener("input", update);
    byId(id).addEventListener("change", update);
  }
  video.addEventListener("loadedmetadata", update);
  video.addEventListener("resize", update); // the picture size changed (new source)
  new ResizeObserver(update).observe(video);
  update();
}
