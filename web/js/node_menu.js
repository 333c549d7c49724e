// The "Add node" menu: every registered node by category, with a search box.
import { LiteGraph } from "@comfyorg/litegraph";
import { element } from "./panels.js";

export class NodeMenu {
  /** `root` is the menu's element; `onPick(className)` adds the chosen node. */
  constructor(root, objectInfo, onPick) {
    this.root = root;
    this.onPick = onPick;
    this.search = element("input", { type: "search", placeholder: "search nodes", testid: "node-search" });
    this.list = element("div", { class: "node-list" });
    this.search.addEventListener("input", () => this.#filter());
    this.search.addEventListener("keydown", (event) => {
      event.stopPropagation();
      if (event.key === "Escape") this.hide();
      if (event.key === "Enter") this.list.querySelector("button:not([hidden])")?.click();
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
        const item = element(
          "button",
          { class: "menu-item", testid: "node-menu-item", title: info.description ?? "", onclick: () => this.#pick(className) },
          element("strong", {}, info.display_name ?? className),
          element("small", {}, className),
        );
        item.dataset.nodeClass = className;
        item.dataset.search = `${className} ${info.display_name} ${category} ${info.description}`.toLowerCase();
        return item;
      });
      return element("section", {}, element("h4", {}, category), ...items);
    });
    this.list.replaceChildren(...sections);
  }

  #filter() {
    const words = this.search.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const item of this.list.querySelectorAll("button")) {
      item.hidden = !words.every((word) => item.dataset.search.includes(word));
    }
    for (const section of this.list.querySelectorAll("section")) {
      section.hidden = !section.querySelector("button:not([hidden])");
    }
  }

  #pick(className) {
    this.hide();
    if (LiteGraph.registered_node_types[className]) this.onPick(className);
  }

  toggle() {
    if (this.root.hidden) this.show();
    else this.hide();
  }

  show() {
    this.root.hidden = false;
    this.search.value = "";
    this.#filter();
    this.search.focus();
  }

  hide() {
    this.root.hidden = true;
  }
}
