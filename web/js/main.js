// The editor page: the canvas, the toolbar, the side panels, and the server's events, wired together.
import { LGraph, LGraphCanvas, LiteGraph } from "@comfyorg/litegraph";
import { api, EventSocket } from "./api.js";
import { openDepthView } from "./depth_view.js";
import { graphToDocument, isGraphDocument, loadDocument } from "./document.js";
import { GraphFiles } from "./files.js";
import { NodeMenu } from "./node_menu.js";
import { colourSockets, registerNodeTypes } from "./node_types.js";
import { element, Gallery, HistoryPanel, QueuePanel } from "./panels.js";
import { RunState } from "./run_state.js";
import { advanceSeeds } from "./widgets.js";

const STORAGE_KEY = "depthgraph.graph";
const DEFAULT_GRAPH = "depth2img.json";
const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

class Editor {
  constructor(objectInfo) {
    this.objectInfo = objectInfo;
    this.description = "";
    this.titleInput = byTestId("graph-title");
    this.graph = new LGraph();
    this.runState = new RunState(this.graph);
    registerNodeTypes(objectInfo, { drawForeground: (node, ctx) => this.runState.drawForeground(node, ctx) });
    const element = document.getElementById("canvas");
    this.canvas = new LGraphCanvas(element, this.graph);
    colourSockets(this.canvas);
    Object.assign(this.canvas, { show_info: false, render_canvas_border: false, low_quality_zoom_threshold: 0.4 });
    this.socket = new EventSocket();
    this.prompts = new Map(); // prompt id → API form, for the gallery's depth view
    this.files = new GraphFiles(this);
    this.queuePanel = new QueuePanel(byTestId("queue-panel"));
    this.historyPanel = new HistoryPanel(byTestId("history-panel"), (document) => this.open(document, "history"));
    this.gallery = new Gallery(byTestId("gallery"), { onDepthView: openDepthView });
    this.nodeMenu = new NodeMenu(byTestId("node-menu"), objectInfo, (className) => this.addNode(className));
  }

  get title() {
    return this.titleInput.value.trim();
  }

  /** Show a graph document (or API form); its problems (unknown nodes, stale choices) are reported. */
  open(document, source = "") {
    if (!isGraphDocument(document)) return this.report(`${source || "this file"} holds no graph`);
    const problems = loadDocument(this.graph, document);
    this.titleInput.value = document.title ?? source.replace(/\.(json|png)$/i, "");
    this.description = document.description ?? "";
    this.runState.reset();
    this.runState.setErrors(problems.map((message) => ({ node: null, message })));
    this.fitView();
    this.autosave();
  }

  addNode(className) {
    const node = LiteGraph.createNode(className);
    const box = this.canvas.canvas.getBoundingClientRect();
    node.pos = this.canvas.ds.convertCanvasToOffset([box.width / 3, box.height / 3]);
    this.graph.add(node);
    this.canvas.selectNode(node);
    return node;
  }

  /** Zoom and pan so the whole graph is in view. */
  fitView() {
    const nodes = this.graph._nodes;
    if (!nodes.length) return;
    const left = Math.min(...nodes.map((n) => n.pos[0])) - 40;
    const top = Math.min(...nodes.map((n) => n.pos[1])) - 80;
    const right = Math.max(...nodes.map((n) => n.pos[0] + n.size[0])) + 40;
    const bottom = Math.max(...nodes.map((n) => n.pos[1] + n.size[1])) + 80;
    const { width, height } = this.canvas.canvas;
    const scale = Math.min(1, Math.max(0.3, Math.min(width / (right - left), height / (bottom - top))));
    this.canvas.ds.scale = scale;
    this.canvas.ds.offset = [-left + (width / scale - (right - left)) / 2, -top + (height / scale - (bottom - top)) / 2];
    this.canvas.setDirty(true, true);
  }

  report(message) {
    this.runState.setErrors([...this.runState.errorList, { node: null, message }]);
  }

  async queue() {
    this.runState.setErrors([]);
    const document = graphToDocument(this.graph, { title: this.title, description: this.description });
    try {
      const answer = await api.queuePrompt({
        prompt: document.nodes,
        client_id: this.socket.clientId,
        extra_data: { extra_pnginfo: { workflow: document } },
      });
      this.prompts.set(answer.prompt_id, document.nodes);
      advanceSeeds(this.graph);
      await this.queuePanel.refresh();
    } catch (error) {
      if (error.body) this.runState.setValidationErrors(error.body);
      else this.report(error.message);
    }
  }

  autosave() {
    const document = graphToDocument(this.graph, { title: this.title, description: this.description });
    localStorage.setItem(STORAGE_KEY, JSON.stringify(document));
  }

  /** Last session's graph, else the library's depth-to-image graph, else an empty canvas. */
  async restore() {
    try {
      const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null");
      if (saved && isGraphDocument(saved)) return this.open(saved, saved.title);
    } catch {
      localStorage.removeItem(STORAGE_KEY);
    }
    const library = await api.library();
    if (library.some((entry) => entry.name === DEFAULT_GRAPH)) this.open(await api.libraryGraph(DEFAULT_GRAPH), DEFAULT_GRAPH);
  }

  renderErrors() {
    const root = byTestId("error-display");
    const items = this.runState.errorList.map((error) => {
      const node = error.node == null ? null : this.graph.getNodeById(Number(error.node) || error.node);
      const where = node ? `${node.title} (#${node.id})${error.input ? ` · ${error.input}` : ""}: ` : "";
      return element("li", { onclick: () => node && this.focus(node) }, `${where}${error.message}`);
    });
    root.hidden = !items.length;
    root.replaceChildren(
      element("button", { class: "close", title: "dismiss", onclick: () => this.runState.setErrors([]) }, "✕"),
      element("ul", {}, ...items),
    );
  }

  focus(node) {
    this.canvas.centerOnNode(node);
    this.canvas.selectNode(node);
  }

  resize() {
    const area = this.canvas.canvas.parentElement;
    this.canvas.resize(area.clientWidth, area.clientHeight);
  }

  wire() {
    const click = (id, handler) => byTestId(id).addEventListener("click", handler);
    click("queue-button", () => this.queue());
    click("interrupt-button", () => api.interrupt());
    click("save-button", () => this.files.save());
    click("load-button", () => this.files.pick());
    click("export-button", () => this.files.exportApi());
    click("node-menu-button", () => this.nodeMenu.toggle());
    click("graph-menu-button", async () => {
      const menu = byTestId("graph-menu");
      menu.hidden = !menu.hidden;
      if (!menu.hidden) await this.files.fillLibraryMenu(menu);
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.queue();
      }
    });
    document.addEventListener("pointerdown", (event) => {
      for (const menu of document.querySelectorAll(".dropdown .menu")) {
        if (!menu.parentElement.contains(event.target)) menu.hidden = true;
      }
    });
    for (const tab of document.querySelectorAll(".sidebar .tabs button")) {
      tab.addEventListener("click", () => this.showTab(tab.dataset.tab));
    }
    this.titleInput.addEventListener("change", () => this.autosave());
    this.files.listen(this.canvas.canvas.parentElement);
    this.runState.addEventListener("change", () => this.renderErrors());
    window.addEventListener("resize", () => this.resize());
    window.addEventListener("beforeunload", () => this.autosave());
    setInterval(() => this.#autosaveIfChanged(), 2000);
    this.#listen();
  }

  // One line on the running prompt: which node, its progress, and how the run ended.
  #followRun(socket, notice) {
    const title = (id) => this.graph.getNodeById(Number(id) || id)?.title ?? `node ${id}`;
    let started = 0;
    let warnings = [];
    const warned = () => (warnings.length ? ` · warning: ${warnings.join("; ")}` : "");
    const on = (type, text) => socket.addEventListener(type, ({ detail }) => (notice.textContent = text(detail ?? {})));
    on("execution_start", () => {
      started = performance.now();
      warnings = [];
      return "running…";
    });
    on("execution_warning", ({ node_id, message }) => {
      warnings.push(`${title(node_id)}: ${message}`);
      return `warning at ${title(node_id)}: ${message}`;
    });
    on("executing", ({ node }) => (node == null ? notice.textContent : `running ${title(node)}`));
    on("progress", ({ node, value, max }) => `${title(node)} ${value}/${max}`);
    on("execution_success", () => `done in ${((performance.now() - started) / 1000).toFixed(1)} s${warned()}`);
    on("execution_interrupted", () => "interrupted");
    on("execution_error", ({ node_id }) => `failed at ${title(node_id)}`);
  }

  #autosaveIfChanged() {
    if (this.graph._version === this.savedVersion) return;
    this.savedVersion = this.graph._version;
    this.autosave();
  }

  showTab(name) {
    for (const tab of document.querySelectorAll(".sidebar .tabs button")) {
      tab.classList.toggle("active", tab.dataset.tab === name);
    }
    for (const panel of document.querySelectorAll(".sidebar .panel")) panel.hidden = panel.dataset.panel !== name;
    if (name === "queue") this.queuePanel.refresh();
    if (name === "history") this.historyPanel.refresh();
  }

  #listen() {
    const socket = this.socket;
    const status = byTestId("status");
    let remaining = 0;
    const showStatus = () => {
      status.textContent = socket.connected ? `${remaining} in queue` : "reconnecting…";
      status.classList.toggle("offline", !socket.connected);
    };
    socket.addEventListener("connection", showStatus);
    socket.addEventListener("status", ({ detail }) => {
      remaining = detail?.status?.exec_info?.queue_remaining ?? 0;
      showStatus();
      this.queuePanel.refresh();
    });
    socket.addEventListener("executing", ({ detail }) => {
      if (detail?.node == null) this.historyPanel.refresh();
    });
    this.#followRun(socket, byTestId("run-notice"));
    this.runState.listen(socket, (promptId, nodeId, output) => {
      if (output?.images?.length) this.gallery.add(promptId, nodeId, output.images, this.prompts.get(promptId));
    });
    socket.connect();
  }
}

async function boot() {
  const editor = new Editor(await api.objectInfo());
  window.depthgraph = editor; // for the console, and for tests that drive the page
  editor.wire();
  editor.resize();
  await editor.restore();
  editor.gallery.addHistory(await api.history());
  await editor.queuePanel.refresh();
  document.body.dataset.ready = "true";
}

boot().catch((error) => {
  document.body.append(element("p", { class: "fatal", testid: "fatal" }, `The editor could not start: ${error.message}`));
  throw error;
});
