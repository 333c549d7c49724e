// What the running prompt is doing, drawn on the nodes: executing, cached, progress, previews, errors.
import { LiteGraph } from "@comfyorg/litegraph";
import { viewUrl } from "./api.js";
import { showImages } from "./widgets.js";

const RUNNING = "#4caf50";
const CACHED = "#546e7a";
const FAILED = "#ff4d4d";
const PROGRESS_FILL = "#4caf5055";
const PROGRESS_LINE = 4;

/** A label in a rounded box at the right end of the title bar, in 12 px bold: readable at the zooms graphs open at. */
function drawBadge(ctx, width, text, colour) {
  const title = LiteGraph.NODE_TITLE_HEIGHT;
  ctx.save();
  ctx.font = "bold 12px sans-serif";
  const textWidth = ctx.measureText(text).width;
  const x = width - textWidth - 18;
  ctx.fillStyle = colour;
  ctx.beginPath();
  ctx.roundRect(x, -title + 6, textWidth + 12, title - 12, 4);
  ctx.fill();
  ctx.fillStyle = "#fff";
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  ctx.fillText(text, x + 6, -title / 2 + 1);
  ctx.restore();
}

export class RunState extends EventTarget {
  constructor(graph) {
    super();
    this.graph = graph;
    this.reset();
  }

  reset() {
    this.promptId = null;
    this.executing = null;
    this.progress = null;
    this.cached = new Set();
    this.errors = new Map(); // node id → [{message, input}]
    this.errorList = [];
  }

  /** Follow the events of one socket; `onOutput(promptId, nodeId, output)` hears every result. */
  listen(socket, onOutput) {
    const on = (type, handler) => socket.addEventListener(type, (event) => handler(event.detail ?? {}));
    on("execution_start", ({ prompt_id }) => {
      this.reset();
      this.promptId = prompt_id;
      this.#changed();
    });
    on("execution_cached", ({ nodes }) => {
      for (const id of nodes ?? []) this.cached.add(String(id));
      this.#changed();
    });
    on("executing", ({ node }) => {
      this.executing = node == null ? null : String(node);
      this.progress = null;
      this.#changed();
    });
    on("progress", ({ value, max, node }) => {
      this.progress = { value, max, node: String(node ?? this.executing) };
      this.#changed();
    });
    on("executed", ({ node, output, prompt_id }) => {
      const target = this.#node(node);
      if (target && output?.images?.length) showImages(target, output.images.map(viewUrl));
      onOutput?.(prompt_id, String(node), output);
    });
    on("execution_error", (data) => {
      this.setErrors([{ node: String(data.node_id), message: `${data.exception_type}: ${data.exception_message}` }]);
      this.executing = null;
    });
    on("execution_interrupted", () => {
      this.executing = null;
      this.progress = null;
      this.#changed();
    });
    on("preview", ({ blob }) => {
      const target = this.#node(this.progress?.node ?? this.executing);
      if (!target) return;
      if (target.previewUrl) URL.revokeObjectURL(target.previewUrl);
      target.previewUrl = URL.createObjectURL(blob);
      showImages(target, [target.previewUrl]);
    });
  }

  /** Errors to show: [{node, input?, message}] (node null for a graph-wide error). */
  setErrors(list) {
    this.errors = new Map();
    for (const error of list) {
      if (error.node == null) continue;
      if (!this.errors.has(error.node)) this.errors.set(error.node, []);
      this.errors.get(error.node).push(error);
    }
    this.errorList = list;
    this.#changed();
  }

  /** A rejected prompt's `node_errors` (or its general error) as errors on the nodes. */
  setValidationErrors(body) {
    const list = [];
    for (const [node, entry] of Object.entries(body?.node_errors ?? {})) {
      for (const error of entry.errors ?? []) {
        list.push({ node, input: error.extra_info?.input_name, message: error.message ?? error.details });
      }
    }
    if (!list.length) list.push({ node: null, message: body?.error?.message ?? "the server refused the graph" });
    this.setErrors(list);
  }

  #node(id) {
    return id == null ? null : this.graph.getNodeById(/^\d+$/.test(id) ? Number(id) : id);
  }

  #changed() {
    this.graph.setDirtyCanvas(true, false);
    this.dispatchEvent(new Event("change"));
  }

  /** Draw the node's run state (called from every node's onDrawForeground). */
  drawForeground(node, ctx) {
    const id = String(node.id);
    const errors = this.errors.get(id);
    const title = LiteGraph.NODE_TITLE_HEIGHT;
    const [width, height] = node.size;
    if (this.executing === id || errors) {
      ctx.strokeStyle = errors ? FAILED : RUNNING;
      ctx.lineWidth = 3;
      ctx.strokeRect(-2, -title - 2, width + 4, height + title + 4);
    }
    if (!node.flags?.collapsed) {
      if (this.progress?.node === id && this.progress.max > 0) this.#drawProgress(node, ctx, width);
      else if (this.cached.has(id) && !errors) drawBadge(ctx, width, "cached", CACHED);
    }
    if (errors) this.#drawErrors(node, ctx, errors);
  }

  // The title bar fills with the run's progress, with "k/n" at its right end ("step k/n" on samplers).
  #drawProgress(node, ctx, width) {
    const { value, max } = this.progress;
    const title = LiteGraph.NODE_TITLE_HEIGHT;
    ctx.save();
    ctx.beginPath();
    ctx.roundRect(0, -title, width, title, [LiteGraph.ROUND_RADIUS, LiteGraph.ROUND_RADIUS, 0, 0]);
    ctx.clip();
    ctx.fillStyle = PROGRESS_FILL;
    ctx.fillRect(0, -title, (width * Math.min(value, max)) / max, title);
    ctx.fillStyle = RUNNING;
    ctx.fillRect(0, -PROGRESS_LINE, (width * Math.min(value, max)) / max, PROGRESS_LINE);
    ctx.restore();
    const steps = String(node.constructor?.category ?? "").startsWith("sampling");
    drawBadge(ctx, width, `${steps ? "step " : ""}${value}/${max}`, RUNNING);
  }

  #drawErrors(node, ctx, errors) {
    ctx.strokeStyle = FAILED;
    ctx.lineWidth = 2;
    for (const error of errors) {
      const slot = error.input ? node.findInputSlot(error.input) : -1;
      const widget = node.widgets?.find((candidate) => candidate.name === error.input);
      if (slot >= 0) {
        const [x, y] = node.getConnectionPos(true, slot);
        ctx.beginPath();
        ctx.arc(x - node.pos[0], y - node.pos[1], 8, 0, Math.PI * 2);
        ctx.stroke();
      } else if (widget?.last_y != null) {
        ctx.strokeRect(8, widget.last_y - 1, node.size[0] - 16, LiteGraph.NODE_WIDGET_HEIGHT + 2);
      }
    }
    ctx.fillStyle = FAILED;
    ctx.font = "12px sans-serif";
    errors.forEach((error, i) => {
      const text = error.input ? `${error.input}: ${error.message}` : error.message;
      ctx.fillText(text.length > 90 ? `${text.slice(0, 89)}…` : text, 0, node.size[1] + 16 + i * 15);
    });
  }
}
