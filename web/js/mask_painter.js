// Load Image's mask painter: paint the area to regenerate over the image, then store it as ComfyUI's mask
// editor does, through /upload/mask: a PNG whose alpha is the mask (transparent = masked), which the server
// puts on a copy of the image in input/clipspace/. LoadImage reads that alpha as its MASK output.
import { api, loadImage, viewUrl } from "./api.js";
import { closeOnEscape } from "./overlays.js";
import { element } from "./panels.js";

const PAINT = [255, 61, 127]; // how the mask shows over the image

// Canvases read back pixel by pixel (the mask, and copies made to read it).
const pixelsOf = (canvas) => canvas.getContext("2d", { willReadFrequently: true });

function blankLike(canvas) {
  return Object.assign(document.createElement("canvas"), { width: canvas.width, height: canvas.height });
}

/** Fill `canvas` with the paint colour, each pixel's alpha `alpha(a)` of the alpha `a` of `source`'s pixel. */
function mapAlpha(canvas, source, alpha) {
  const context = pixelsOf(canvas);
  const pixels = pixelsOf(source).getImageData(0, 0, canvas.width, canvas.height);
  const data = pixels.data;
  for (let i = 0; i < data.length; i += 4) {
    data.set(PAINT, i);
    data[i + 3] = alpha(data[i + 3]);
  }
  context.putImageData(pixels, 0, 0);
}

/**
 * Open the painter on an input image ({filename, subfolder, type}); the mask it already carries (its
 * transparency) is where painting starts. `onSaved(stored)` hears the upload's answer {name, subfolder, type}.
 */
export async function openMaskPainter(original, onSaved) {
  const image = await loadImage(viewUrl(original));
  const mask = element("canvas", { class: "mask", testid: "mask-canvas" });
  mask.width = image.naturalWidth;
  mask.height = image.naturalHeight;
  const context = pixelsOf(mask);
  const existing = blankLike(mask);
  pixelsOf(existing).drawImage(image, 0, 0);
  mapAlpha(mask, existing, (a) => 255 - a);

  const size = element("input", { type: "range", min: 2, max: 256, value: Math.round(Math.max(mask.width, mask.height) / 20), testid: "mask-size" });
  const tool = (name, label) =>
    element("label", {}, element("input", { type: "radio", name: "mask-tool", value: name, testid: `mask-${name}` }), label);
  const tools = element("span", { class: "tools" }, tool("brush", "brush"), tool("eraser", "eraser"));
  tools.querySelector("input").checked = true;
  const problem = element("span", { class: "problem", testid: "mask-problem" });
  let last = null;
  const at = (event) => {
    const box = mask.getBoundingClientRect();
    return [((event.clientX - box.left) * mask.width) / box.width, ((event.clientY - box.top) * mask.height) / box.height];
  };
  const stroke = (event) => {
    const point = at(event);
    const erasing = tools.querySelector("input:checked").value === "eraser";
    context.globalCompositeOperation = erasing ? "destination-out" : "source-over";
    context.strokeStyle = `rgb(${PAINT})`;
    context.lineWidth = Number(size.value);
    context.lineCap = context.lineJoin = "round";
    context.beginPath();
    context.moveTo(...(last ?? point));
    context.lineTo(...point);
    context.stroke();
    last = point;
  };
  mask.addEventListener("pointerdown", (event) => {
    mask.setPointerCapture(event.pointerId);
    last = null;
    stroke(event);
  });
  mask.addEventListener("pointermove", (event) => event.buttons && stroke(event));
  mask.addEventListener("pointerup", () => (last = null));

  const invert = () => {
    const copy = blankLike(mask);
    pixelsOf(copy).drawImage(mask, 0, 0);
    mapAlpha(mask, copy, (a) => 255 - a);
  };
  const save = async () => {
    // Opaque everywhere but where painted: the server reads only this alpha (transparent = masked).
    const upload = blankLike(mask);
    const ink = upload.getContext("2d");
    ink.fillRect(0, 0, upload.width, upload.height);
    ink.globalCompositeOperation = "destination-out";
    ink.drawImage(mask, 0, 0);
    try {
      const blob = await new Promise((resolve) => upload.toBlob(resolve, "image/png"));
      onSaved(await api.uploadMask(blob, `clipspace-mask-${Date.now()}.png`, original));
      close();
    } catch (error) {
      problem.textContent = error.message;
    }
  };
  const button = (label, testid, onclick, primary = false) =>
    element("button", { testid, onclick, ...(primary ? { class: "primary" } : {}) }, label);
  const overlay = element(
    "div",
    { class: "mask-painter", testid: "mask-painter" },
    element(
      "div",
      { class: "bar" },
      tools,
      element("label", {}, "size", size),
      button("invert", "mask-invert", invert),
      button("clear", "mask-clear", () => context.clearRect(0, 0, mask.width, mask.height)),
      problem,
      button("cancel", "mask-cancel", () => close()),
      button("save", "mask-save", save, true),
    ),
    element("div", { class: "stage" }, element("img", { src: image.src, alt: original.filename }), mask),
  );
  const forget = closeOnEscape(() => close());
  const close = () => {
    forget();
    overlay.remove();
  };
  document.body.append(overlay);
  return { overlay, close };
}
