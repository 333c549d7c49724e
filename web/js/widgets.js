// Widgets litegraph does not have: multiline text, image upload with a preview and a mask painter, seed control.
import { LiteGraph } from "@comfyorg/litegraph";
import { api, inputImage, viewUrl } from "./api.js";
import { openMaskPainter } from "./mask_painter.js";

const LINE_HEIGHT = 14;
const MULTILINE_HEIGHT = 84;
const MAX_PREVIEW_HEIGHT = 360;
const PREVIEW_GAP = 12; // kept free between a node grown for its image and the node below it

/** A multiline text box drawn on the canvas; clicking it opens a textarea over it. */
export function addMultilineWidget(node, name, value, tooltip) {
  const widget = {
    type: "multiline",
    name,
    value,
    tooltip,
    options: {},
    computeSize: (width) => [width, MULTILINE_HEIGHT],
    draw(ctx, _node, width, y) {
      const height = MULTILINE_HEIGHT - 6;
      ctx.fillStyle = "#1d1d1d";
      ctx.strokeStyle = "#555";
      ctx.beginPath();
      ctx.roundRect(12, y, width - 24, height, 6);
      ctx.fill();
      ctx.stroke();
      ctx.save();
      ctx.clip();
      ctx.fillStyle = this.value ? "#ddd" : "#777";
      ctx.font = "12px sans-serif";
      const lines = wrap(ctx, this.value || name, width - 36);
      lines.slice(0, Math.floor(height / LINE_HEIGHT)).forEach((line, i) => {
        ctx.fillText(line, 18, y + 14 + i * LINE_HEIGHT);
      });
      ctx.restore();
      this.last_y = y;
    },
    onPointerDown(pointer, clicked, canvas) {
      pointer.onClick = () => openTextEditor(canvas, clicked, widget);
      return true;
    },
  };
  return node.addCustomWidget(widget);
}

function wrap(ctx, text, width) {
  const lines = [];
  for (const paragraph of String(text).split("\n")) {
    let line = "";
    for (const word of paragraph.split(" ")) {
      const candidate = line ? `${line} ${word}` : word;
      if (ctx.measureText(candidate).width > width && line) {
        lines.push(line);
        line = word;
      } else {
        line = candidate;
      }
    }
    lines.push(line);
  }
  return lines;
}

function openTextEditor(canvas, node, widget) {
  const scale = canvas.ds.scale;
  const [x, y] = canvas.ds.convertOffsetToCanvas([node.pos[0] + 12, node.pos[1] + widget.last_y]);
  const box = canvas.canvas.getBoundingClientRect();
  const area = document.createElement("textarea");
  area.className = "dg-text-editor";
  area.dataset.testid = "text-editor";
  area.value = widget.value;
  Object.assign(area.style, {
    left: `${box.left + x}px`,
    top: `${box.top + y}px`,
    width: `${(node.size[0] - 24) * scale}px`,
    height: `${Math.max(MULTILINE_HEIGHT * scale, 120)}px`,
  });
  const commit = () => {
    if (!area.isConnected) return;
    widget.value = area.value;
    widget.callback?.(widget.value);
    area.remove();
    node.graph?.change();
    canvas.setDirty(true);
  };
  area.addEventListener("blur", commit);
  area.addEventListener("keydown", (event) => {
    event.stopPropagation(); // typing is not a canvas shortcut
    if (event.key === "Escape" || (event.key === "Enter" && (event.ctrlKey || event.metaKey))) commit();
  });
  document.body.append(area);
  area.focus();
}

/** A file picker (uploads the chosen image and selects it), and the mask painter on nodes with a MASK
 * output (Load Image: its alpha), not on loaders of depth maps. */
export function addUploadWidget(node, combo) {
  const picker = document.createElement("input");
  picker.type = "file";
  picker.accept = "image/png,image/jpeg,image/webp";
  picker.addEventListener("change", async () => {
    if (picker.files?.length) await uploadInto(node, combo, picker.files[0]);
    picker.value = "";
  });
  node.addWidget("button", "choose image to upload", null, () => picker.click(), { serialize: false });
  const paintMask = () => combo.value && openMaskPainter(inputImage(combo.value), (stored) => select(node, combo, stored));
  if (node.constructor.schema?.output?.includes("MASK")) {
    node.addWidget("button", "paint mask", null, paintMask, { serialize: false });
  }
  const original = combo.callback;
  combo.callback = (value) => {
    original?.(value);
    showInputImage(node, value);
  };
  if (combo.value) showInputImage(node, combo.value);
}

/** Upload `file` to the input folder and make it the node's image. */
export async function uploadInto(node, combo, file) {
  return select(node, combo, await api.uploadImage(file));
}

// Make an upload's answer ({name, subfolder}) the node's image.
function select(node, combo, stored) {
  const name = stored.subfolder ? `${stored.subfolder}/${stored.name}` : stored.name;
  if (!combo.options.values.includes(name)) combo.options.values.push(name);
  combo.value = name;
  showInputImage(node, name);
  if (node.graph) node.graph._version++; // as a widget edit does, so the change is autosaved
  node.graph?.change();
  return name;
}

/** Show an input-folder image on the node (LoadImage's preview). */
export function showInputImage(node, name) {
  if (name) showImages(node, [viewUrl(inputImage(name))]);
}

/** Images drawn in the node's body below its widgets (inputs, results, live previews). */
export function showImages(node, urls) {
  node.imageUrls = urls;
  node.images = urls.map((url) => {
    const image = new Image();
    image.onload = () => {
      makeRoomFor(node, image);
      node.setDirtyCanvas(true, true);
    };
    image.src = url;
    return image;
  });
}

/**
 * Grow the node down for its image, into free space only: never over the node below it. The growth is
 * for this session: `node.layoutSize` (what the document saves) keeps the size the graph or the user gave.
 */
function makeRoomFor(node, image) {
  if (node.flags?.collapsed) return;
  node.layoutSize ??= [...node.size];
  const width = node.size[0] - 20;
  const preview = Math.min(MAX_PREVIEW_HEIGHT, (width * image.naturalHeight) / image.naturalWidth);
  const wanted = node.computeSize()[1] + preview + 12;
  const room = node.graph ? roomBelow(node) : Infinity; // a node not yet placed has no neighbours
  node.size[1] = Math.max(node.layoutSize[1], Math.min(wanted, room));
}

// The body height the node can have before it meets the first node below it.
function roomBelow(node) {
  const [x, y] = node.pos;
  let room = Infinity;
  for (const other of node.graph._nodes) {
    if (other === node || other.pos[0] >= x + node.size[0] || other.pos[0] + other.size[0] <= x) continue;
    const top = other.pos[1] - LiteGraph.NODE_TITLE_HEIGHT;
    if (top >= y) room = Math.min(room, top - PREVIEW_GAP - y);
  }
  return room;
}

/** Draw the node's images in the space left below the widgets. */
export function drawImages(node, ctx) {
  const image = node.images?.at(-1);
  if (!image?.complete || !image.naturalWidth) return;
  const top = node.computeSize()[1] + 4; // the body's y = 0 is under the title bar
  const width = node.size[0] - 20;
  const height = node.size[1] - top - 8;
  if (height < 24) return;
  const scale = Math.min(width / image.naturalWidth, height / image.naturalHeight);
  const w = image.naturalWidth * scale;
  const h = image.naturalHeight * scale;
  ctx.drawImage(image, 10 + (width - w) / 2, top + (height - h) / 2, w, h);
}

const SEED_CONTROLS = ["fixed", "increment", "decrement", "randomize"];

/** ComfyUI's "control after generate" beside a seed: what happens to the seed after each queue. */
export function addSeedControl(node, seed, value = "fixed") {
  const control = node.addWidget("combo", "control after generate", value, () => {}, {
    values: SEED_CONTROLS,
    serialize: false,
  });
  control.controls = seed;
  return control;
}

/** Apply every seed control of the graph (after a prompt was queued). */
export function advanceSeeds(graph) {
  for (const node of graph._nodes) {
    for (const control of node.widgets ?? []) {
      const seed = control.controls;
      if (!seed) continue;
      const { min = 0, max = Number.MAX_SAFE_INTEGER } = seed.options;
      const top = Math.min(max, Number.MAX_SAFE_INTEGER);
      if (control.value === "increment") seed.value = Math.min(top, seed.value + 1);
      if (control.value === "decrement") seed.value = Math.max(min, seed.value - 1);
      if (control.value === "randomize") seed.value = min + Math.floor(Math.random() * (Math.min(top, 2 ** 48) - min));
    }
  }
  graph.setDirtyCanvas(true, false);
}
