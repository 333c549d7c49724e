// The side panels: the queue, the history (entries re-load their graph) and the outputs gallery.
import { api, inputImage, viewUrl } from "./api.js";
import { closeOnEscape } from "./overlays.js";

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "testid") node.dataset.testid = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((child) => child != null));
  return node;
}
export { element };

const shortId = (id) => String(id).slice(0, 8);

/** Pending and running prompts, with a cancel button on the pending ones. */
export class QueuePanel {
  constructor(root) {
    this.root = root;
  }

  async refresh() {
    const queue = await api.queue();
    const rows = [
      ...queue.queue_running.map((item) => this.#row(item, "running")),
      ...queue.queue_pending.map((item) => this.#row(item, "pending")),
    ];
    this.root.replaceChildren(...(rows.length ? rows : [element("p", { class: "empty" }, "Nothing queued.")]));
  }

  #row([number, promptId, prompt], state) {
    const cancel =
      state === "pending"
        ? element("button", { title: "remove from the queue", onclick: () => this.#cancel(promptId) }, "✕")
        : null;
    const label = `#${number} · ${shortId(promptId)} · ${Object.keys(prompt).length} nodes`;
    return element("div", { class: `item ${state}`, testid: "queue-item" }, element("span", {}, label), element("em", {}, state), cancel);
  }

  async #cancel(promptId) {
    await api.deleteQueued([promptId]);
    await this.refresh();
  }
}

/** The graph a history or queue entry ran: its depthgraph file if the editor sent one, else its API form. */
export function graphOfEntry(entry) {
  const [, , prompt, extra] = entry.prompt;
  const workflow = extra?.extra_pnginfo?.workflow;
  return workflow?.format === "depthgraph" ? workflow : prompt;
}

/** Finished prompts, newest first; clicking one loads its graph. */
export class HistoryPanel {
  constructor(root, onLoad) {
    this.root = root;
    this.onLoad = onLoad;
    this.entries = {};
  }

  async refresh() {
    this.entries = await api.history();
    const sorted = Object.entries(this.entries).sort(([, a], [, b]) => b.prompt[0] - a.prompt[0]);
    const rows = sorted.map(([promptId, entry]) => {
      const status = entry.status?.status_str ?? "?";
      const images = Object.values(entry.outputs ?? {}).reduce((n, out) => n + (out.images?.length ?? 0), 0);
      return element(
        "button",
        { class: `item ${status}`, testid: "history-item", title: "load this graph", onclick: () => this.onLoad(graphOfEntry(entry)) },
        element("span", {}, `#${entry.prompt[0]} · ${shortId(promptId)}`),
        element("em", {}, `${status} · ${images} image${images === 1 ? "" : "s"}`),
      );
    });
    this.root.replaceChildren(...(rows.length ? rows : [element("p", { class: "empty" }, "No history yet.")]));
  }
}

/** Result images as <img> elements captioned with file name, seed and prompt; full-size view and download. */
export class Gallery {
  constructor(root, { onDepthView } = {}) {
    this.root = root;
    this.onDepthView = onDepthView;
    this.seen = new Set();
    this.runs = new Map(); // prompt id → {prompt, outputs, figures}
  }

  /** Add a node's output images; `prompt` is the API form that made them (for the depth view). */
  add(promptId, nodeId, images, prompt = null) {
    const run = this.runs.get(promptId) ?? { prompt, outputs: {}, figures: [] };
    this.runs.set(promptId, run);
    run.prompt ??= prompt;
    run.outputs[nodeId] = { images };
    for (const image of images ?? []) {
      const url = viewUrl(image);
      if (this.seen.has(url)) continue;
      this.seen.add(url);
      const picture = element("img", { src: url, alt: image.filename, loading: "lazy", testid: "gallery-image", title: "full size" });
      picture.dataset.promptId = promptId;
      picture.dataset.node = nodeId;
      picture.addEventListener("click", () => this.open(url, image.filename));
      const { seed, text } = run.prompt ? generationOf(run.prompt, nodeId) : {};
      const made = [seed != null ? `seed ${seed}` : null, text].filter((part) => part != null).join(" · ");
      const caption = element(
        "figcaption",
        {},
        element(
          "span",
          { class: "caption", testid: "gallery-caption", title: [image.filename, made].filter(Boolean).join("\n") },
          element("strong", {}, image.filename),
          made ? element("small", {}, made) : null,
        ),
        element("a", { href: url, download: image.filename, title: "download", testid: "gallery-download" }, "⤓"),
      );
      const figure = element("figure", { testid: "gallery-item" }, picture, caption);
      figure.dataset.node = nodeId;
      run.figures.push(figure);
      this.root.prepend(figure);
    }
    this.#offerDepthView(run);
  }

  // Once a prompt has saved both a depth map and an image, its figures get a "3-D" button.
  #offerDepthView(run) {
    for (const figure of run.figures) {
      const sources = run.prompt ? depthViewSources(run.prompt, run.outputs, figure.dataset.node) : null;
      if (!sources || figure.querySelector("button")) continue;
      const button = element("button", { title: "depth view", testid: "gallery-depth", onclick: () => this.onDepthView?.(sources) }, "3-D");
      figure.querySelector("figcaption").append(button);
    }
  }

  /** Everything the history holds, oldest first so the newest ends on top. */
  addHistory(history) {
    const entries = Object.entries(history).sort(([, a], [, b]) => a.prompt[0] - b.prompt[0]);
    for (const [promptId, entry] of entries) {
      for (const [nodeId, output] of Object.entries(entry.outputs ?? {})) {
        this.add(promptId, nodeId, output.images, entry.prompt[2]);
      }
    }
  }

  /** The full-size view; a click beside the image, "close" or Escape closes it. */
  open(url, filename) {
    const close = () => {
      forget();
      overlay.remove();
    };
    const overlay = element(
      "div",
      { class: "lightbox", testid: "lightbox", onclick: (event) => event.target === overlay && close() },
      element("img", { src: url, alt: filename }),
      element("div", { class: "bar" }, element("a", { href: url, download: filename }, "download"), element("button", { onclick: close }, "close")),
    );
    const forget = closeOnEscape(close);
    document.body.append(overlay);
  }
}

/**
 * For an output of a depth-to-image prompt: the input image, the depth map and the result, if the
 * prompt saved both the depth map (through DepthToImage) and an image. Else null.
 */
export function depthViewSources(prompt, outputs, nodeId) {
  const sourceClass = (id) => {
    const link = prompt[id]?.inputs?.images;
    return Array.isArray(link) ? prompt[String(link[0])]?.class_type : null;
  };
  const firstImage = (id) => outputs[id]?.images?.[0];
  const ids = Object.keys(outputs).filter((id) => firstImage(id));
  const depthId = ids.find((id) => sourceClass(id) === "DepthToImage");
  const resultId = ids.find((id) => sourceClass(id) !== "DepthToImage");
  if (!depthId || !resultId || (nodeId !== depthId && nodeId !== resultId)) return null;
  const loader = Object.values(prompt).find((node) => node.class_type === "LoadImage");
  const name = loader?.inputs?.image;
  const input = typeof name === "string" ? viewUrl(inputImage(name)) : null;
  return { depth: viewUrl(firstImage(depthId)), result: viewUrl(firstImage(resultId)), input };
}

const isLink = (value) => Array.isArray(value) && value.length === 2 && typeof value[1] === "number";

/**
 * What made an output of a prompt (API form): the nearest seed upstream of node `nodeId`, and the text of
 * the prompt reached through the nearest `positive` input (else the nearest text). Either may be null.
 */
export function generationOf(prompt, nodeId) {
  let seed = null;
  let positive = null;
  let anyText = null;
  const seen = new Set([String(nodeId)]);
  const queue = [String(nodeId)];
  while (queue.length) {
    const inputs = prompt[queue.shift()]?.inputs ?? {};
    const ownSeed = inputs.seed ?? inputs.noise_seed;
    if (seed == null && typeof ownSeed === "number") seed = ownSeed;
    if (anyText == null && typeof inputs.text === "string") anyText = inputs.text;
    if (positive == null && isLink(inputs.positive)) positive = textOf(prompt, String(inputs.positive[0]));
    for (const value of Object.values(inputs)) {
      const source = isLink(value) ? String(value[0]) : null;
      if (source && !seen.has(source)) {
        seen.add(source);
        queue.push(source);
      }
    }
  }
  return { seed, text: positive ?? anyText };
}

// The text a conditioning comes from, followed back through nodes that change it (e.g. ControlNetApply).
function textOf(prompt, id) {
  for (let hops = 0; id != null && hops < 32; hops++) {
    const inputs = prompt[id]?.inputs ?? {};
    if (typeof inputs.text === "string") return inputs.text;
    const link = [inputs.conditioning, inputs.positive, inputs.conditioning_to].find(isLink);
    id = link ? String(link[0]) : null;
  }
  return null;
}
