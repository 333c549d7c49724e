// Graph files in and out: save, load, export the API form, the graphs/ library, drop and paste.
import { LiteGraph } from "@comfyorg/litegraph";
import { api } from "./api.js";
import { graphToDocument, graphToPrompt } from "./document.js";
import { element } from "./panels.js";
import { uploadInto } from "./widgets.js";

/** Offer `data` as a downloaded JSON file. */
export function download(filename, data) {
  const blob = new Blob([`${JSON.stringify(data, null, 2)}\n`], { type: "application/json" });
  const link = element("a", { href: URL.createObjectURL(blob), download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

const fileStem = (title) => (title || "graph").replace(/[^\w.-]+/g, "_").slice(0, 80);

export class GraphFiles {
  /** `app` has graph, canvas, title, description, open(document, source) and report(message). */
  constructor(app) {
    this.app = app;
    this.picker = element("input", { type: "file", accept: ".json,.png,application/json,image/png", hidden: "" });
    this.picker.addEventListener("change", () => {
      const [file] = this.picker.files;
      this.picker.value = "";
      if (file) this.openFile(file);
    });
    document.body.append(this.picker);
  }

  save() {
    const { graph, title, description } = this.app;
    download(`${fileStem(title)}.json`, graphToDocument(graph, { title, description }));
  }

  exportApi() {
    download(`${fileStem(this.app.title)}_api.json`, graphToPrompt(this.app.graph));
  }

  pick() {
    this.picker.click();
  }

  /** A graph file or a PNG saved by SaveImage, read by the server whatever its form. */
  async openFile(file) {
    try {
      this.app.open(await api.readGraphFile(file), file.name);
    } catch (error) {
      this.app.report(error.message);
    }
  }

  /** Fill `menu` with the library's graphs, a title and a description each; choosing one calls `hide` and opens it. */
  async fillLibraryMenu(menu, hide) {
    const entries = await api.library();
    const items = entries.map((entry) => {
      const item = element(
        "button",
        {
          class: "menu-item graph-item",
          testid: "graph-item",
          title: `${entry.title} (${entry.name})\n\n${entry.error || entry.description}`,
          onclick: async () => {
            hide();
            try {
              this.app.open(await api.libraryGraph(entry.name), entry.name);
            } catch (error) {
              this.app.report(error.message);
            }
          },
        },
        element("strong", { testid: "graph-item-title" }, entry.title),
        element("span", { testid: "graph-item-description" }, entry.error || entry.description),
      );
      item.dataset.name = entry.name;
      return item;
    });
    menu.replaceChildren(...(items.length ? items : [element("p", { class: "empty" }, "The graphs folder is empty.")]));
  }

  /** Dropped files: graphs open; images (or PNGs without a graph) become LoadImage nodes. */
  async drop(files, position) {
    for (const file of files) {
      const isJson = file.name.endsWith(".json") || file.type === "application/json";
      if (isJson) {
        await this.openFile(file);
      } else if (file.type === "image/png") {
        try {
          this.app.open(await api.readGraphFile(file), file.name);
        } catch {
          await this.addImageNode(file, position); // a PNG without a graph is just an image
        }
      } else if (file.type.startsWith("image/")) {
        await this.addImageNode(file, position);
      } else {
        this.app.report(`${file.name}: drop a graph (.json), a PNG saved by SaveImage, or an image`);
      }
    }
  }

  /** Upload an image, then add a LoadImage node showing it at `position` (canvas coordinates). */
  async addImageNode(file, position) {
    const node = LiteGraph.createNode("LoadImage");
    if (!node) return this.app.report("this server has no LoadImage node");
    const combo = node.widgets.find((widget) => widget.name === "image");
    try {
      await uploadInto(node, combo, file); // the node appears only once its image is stored
    } catch (error) {
      return this.app.report(`${file.name}: ${error.message}`);
    }
    node.pos = [...(position ?? this.#centre())];
    this.app.graph.add(node);
    return node;
  }

  #centre() {
    const { canvas } = this.app;
    const box = canvas.canvas.getBoundingClientRect();
    return canvas.ds.convertCanvasToOffset([box.width / 2, box.height / 2]);
  }

  /** Wire drag-and-drop and paste on the page. */
  listen(target) {
    target.addEventListener("dragover", (event) => event.preventDefault());
    target.addEventListener("drop", (event) => {
      event.preventDefault();
      const files = [...(event.dataTransfer?.files ?? [])];
      const box = this.app.canvas.canvas.getBoundingClientRect();
      const position = this.app.canvas.ds.convertCanvasToOffset([event.clientX - box.left, event.clientY - box.top]);
      if (files.length) this.drop(files, position);
    });
    document.addEventListener("paste", (event) => {
      if (event.target instanceof HTMLTextAreaElement || event.target instanceof HTMLInputElement) return;
      const images = [...(event.clipboardData?.files ?? [])].filter((file) => file.type.startsWith("image/"));
      if (!images.length) return;
      event.preventDefault();
      for (const image of images) this.addImageNode(image);
    });
  }
}
