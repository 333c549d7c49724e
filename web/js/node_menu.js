// The node search: every registered node by category, with a search box. One menu for "Add node", a
// double-click on the canvas and a link dropped on it (then only nodes that can take the link); it opens
// inside the canvas area.
import { LiteGraph } from "@comfyorg/litegraph";
import { inputsOf, isWidgetSpec } from "./node_types.js";
import { closeOnEscape } from "./overlays.js";
import { element } from "./panels.js";

const EDGE = 8; // px kept between the menu and the canvas area's edges

export class NodeMenu {
  /**
   * `root` is the menu's element, `area` the element it stays inside; `onPick(className, request)` adds the
   * chosen node, `request` being what `showAt` was given (where on the graph).
   */
  constructor(root, area, objectInfo, onPick) {
    this.root = root;
    this.area = area;
    this.onPick = onPick;
    this.request = {};
    this.sockets = new Map(); // class name → { inputs, outputs }: the socket types it has
    this.search = element("input", { type: "search", placeholder: "search nodes", testid: "node-search" });
    this.list = element("div", { class: "node-list" });
    this.search.addEventListener("input", () => this.#filter());
    this.search.addEventListener("keydown", (event) => {
      event.stopPropagation(); // typing is not a canvas shortcut
      if (event.key === "Enter") this.#best()?.click();
    });
    this.root.replaceChildren(this.search, this.list);
    this.#build(objectInfo);
  }

  #build(objectInfo) {
    const byCategory = new Map();
    for (const [className, info] of Object.entries(objectInfo)) {
      const category = info.category || "other";
      if (!byCategory.has(category)) byCategory.set(category, []);
      byCategory.get(category).push([className, info]);
    }
    const sections = [...byCategory.keys()].sort().map((category) => {
      const items = byCategory.get(category).map(([className, info]) => {
        const inputs = inputsOf(info).filter(([, spec]) => spec && !isWidgetSpec(spec));
        this.sockets.set(className, { inputs: new Set(inputs.map(([, [type]]) => type)), outputs: new Set(info.output) });
        const item = element(
          "button",
          { class: "menu-item", testid: "node-menu-item", title: info.description ?? "", onclick: () => this.#pick(className) },
          element("strong", {}, info.display_name ?? className),
          element("small", {}, className),
        );
        item.dataset.nodeClass = className;
        item.dataset.name = `${className} ${info.display_name}`.toLowerCase();
        item.dataset.search = `${item.dataset.name} ${category} ${info.description}`.toLowerCase();
        return item;
      });
      return element("section", { testid: "node-category" }, element("h4", {}, category), ...items);
    });
    this.list.replaceChildren(...sections);
  }

  get #words() {
    return this.search.value.toLowerCase().split(/\s+/).filter(Boolean);
  }

  /** What Enter picks: the first shown node whose name has every word, else the first shown. */
  #best() {
    const shown = [...this.list.querySelectorAll("button:not([hidden])")];
    const words = this.#words;
    return shown.find((item) => words.every((word) => item.dataset.name.includes(word))) ?? shown[0];
  }

  #filter() {
    const words = this.#words;
    for (const item of this.list.querySelectorAll("button")) {
      const fits = this.#takesLink(item.dataset.nodeClass);
      item.hidden = !fits || !words.every((word) => item.dataset.search.includes(word));
    }
    for (const section of this.list.querySelectorAll("section")) {
      section.hidden = !section.querySelector("button:not([hidden])");
    }
  }

  /** Whether a node can take the link being dropped: an input of its type (from an output) or an output. */
  #takesLink(className) {
    const { type_filter_in: input, type_filter_out: output } = this.request;
    const { inputs, outputs } = this.sockets.get(className);
    return (!input || inputs.has(input)) && (!output || outputs.has(output));
  }

  #pick(className) {
    const request = this.request;
    this.hide();
    if (LiteGraph.registered_node_types[className]) this.onPick(className, request);
  }

  get shown() {
    return !this.root.hidden;
  }

  /** Open under the toolbar's button. */
  showUnder(button) {
    const box = button.getBoundingClientRect();
    this.showAt(box.left, box.bottom + 4);
  }

  /** Open at a point of the page, moved as needed to stay inside the canvas area; `request` goes to `onPick`. */
  showAt(x, y, request = {}) {
    this.request = request;
    this.root.hidden = false;
    this.search.value = "";
    this.#filter();
    const area = this.area.getBoundingClientRect();
    this.root.style.maxHeight = `${Math.max(160, area.height - 2 * EDGE)}px`;
    const { width, height } = this.root.getBoundingClientRect();
    this.root.style.left = `${Math.max(area.left + EDGE, Math.min(x, area.right - width - EDGE))}px`;
    this.root.style.top = `${Math.max(area.top + EDGE, Math.min(y, area.bottom - height - EDGE))}px`;
    this.forget?.();
    this.forget = closeOnEscape(() => this.hide());
    this.search.focus();
  }

  hide() {
    this.forget?.();
    this.forget = null;
    this.root.hidden = true;
  }
}
