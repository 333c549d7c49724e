// The editor page: the canvas, the toolbar, the side panels, and the server's events, wired together.
import { LGraph, LGraphCanvas, LiteGraph } from "@comfyorg/litegraph";
import { api, EventSocket } from "./api.js";
import { openDepthView } from "./depth_view.js";
import { graphToDocument, isGraphDocument, loadDocument } from "./document.js";
import { GraphFiles } from "./files.js";
import { NodeMenu } from "./node_menu.js";
import { colourSockets, registerNodeTypes } from "./node_types.js";
import { askToConfirm, closeOnEscape } from "./overlays.js";
import { element, Gallery, HistoryPanel, QueuePanel } from "./panels.js";
import { RunState } from "./run_state.js";
import { canvasSettings, showGraph } from "./view.js";
import { advanceSeeds } from "./widgets.js";

const STORAGE_KEY = "depthgraph.graph";
const SAVED_KEY = "depthgraph.graph.saved"; // the graph as last opened or saved, to tell unsaved changes
const BATCH_KEY = "depthgraph.batch";
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
    const canvasElement = document.getElementById("canvas");
    this.canvas = new LGraphCanvas(canvasElement, this.graph);
    colourSockets(this.canvas);
    Object.assign(this.canvas, { show_info: false, render_canvas_border: false, ...canvasSettings });
    this.socket = new EventSocket();
    this.prompts = new Map(); // prompt id → API form, for the gallery's depth view
    this.files = new GraphFiles(this);
    this.queuePanel = new QueuePanel(byTestId("queue-panel"));
    this.historyPanel = new HistoryPanel(byTestId("history-panel"), (document) => this.open(document, "history"));
    this.gallery = new Gallery(byTestId("gallery"), { onDepthView: openDepthView });
    const addNode = (className, request) => this.addNode(className, request);
    this.nodeMenu = new NodeMenu(byTestId("node-menu"), canvasElement.parentElement, objectInfo, addNode);
    // A double-click or a dropped link opens the editor's own node search, not litegraph's search box;
    // `link` says what was dropped (litegraph's node_from/slot_from or node_to/slot_to, and the type).
    this.canvas.showSearchBox = (event, link = {}) =>
      this.nodeMenu.showAt(event.clientX, event.clientY, { ...link, ...at(event) });
    // A link dropped on the canvas, with or without Shift, opens that search too (not a context menu).
    LiteGraph.release_link_on_empty_shows_menu = true;
    this.canvas.showConnectionMenu = ({ nodeFrom, slotFrom, nodeTo, slotTo, e }) =>
      this.canvas.showSearchBox(
        e,
        nodeFrom
          ? { node_from: nodeFrom, slot_from: slotFrom, type_filter_in: slotFrom.type }
          : { node_to: nodeTo, slot_to: slotTo, type_filter_out: slotTo.type },
      );
    this.batchInput = byTestId("batch-count");
    this.batchInput.value = localStorage.getItem(BATCH_KEY) ?? "1";
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
    this.#opened();
  }

  /** An empty canvas, once unsaved changes (since the graph was opened or saved) may be discarded. */
  async newGraph() {
    const name = this.title ? `“${this.title}”` : "this graph";
    if (this.hasUnsavedChanges() && !(await askToConfirm(`Discard the unsaved changes to ${name}?`, "Discard"))) return;
    this.graph.clear();
    this.titleInput.value = "";
    this.description = "";
    this.runState.reset();
    this.#opened();
  }

  #opened() {
    this.fitTitle();
    this.fitView();
    this.markSaved();
    this.autosave();
  }

  #document() {
    return graphToDocument(this.graph, { title: this.title, description: this.description });
  }

  /** Remember the graph as it is now as the one the user has (opened or saved). */
  markSaved() {
    this.saved = JSON.stringify(this.#document());
    localStorage.setItem(SAVED_KEY, this.saved);
  }

  hasUnsavedChanges() {
    return this.graph._nodes.length > 0 && JSON.stringify(this.#document()) !== this.saved;
  }

  /** Add a node at `request`'s canvasX/Y (where the search was opened), else a third into the view. */
  addNode(className, request = {}) {
    const node = LiteGraph.createNode(className);
    const box = this.canvas.canvas.getBoundingClientRect();
    const third = () => this.canvas.ds.convertCanvasToOffset([box.width / 3, box.height / 3]);
    node.pos = request.canvasX == null ? third() : [request.canvasX, request.canvasY];
    this.graph.add(node);
    connectDropped(node, request);
    this.canvas.selectNode(node);
    return node;
  }

  /** Zoom and pan so the graph reads: all of it if it fits at a readable zoom, else its start. */
  fitView() {
    const area = this.canvas.canvas.parentElement;
    showGraph(this.canvas, area.clientWidth, area.clientHeight);
  }

  /** The title field as wide as its title, so long titles show whole (the toolbar's room allowing). */
  fitTitle() {
    this.titleInput.style.width = `${Math.max(14, this.titleInput.value.length + 3)}ch`;
    this.titleInput.title = this.titleInput.value;
  }

  report(message) {
    this.runState.setErrors([...this.runState.errorList, { node: null, message }]);
  }

  /** Queue the graph batch-count times, as ComfyUI does: each seed's "control after generate" acts between. */
  async queue() {
    this.runState.setErrors([]);
    const count = Math.max(1, Math.floor(Number(this.batchInput.value)) || 1);
    for (let i = 0; i < count; i++) {
      if (!(await this.#queueOnce())) break;
    }
    await this.queuePanel.refresh();
  }

  async #queueOnce() {
    const document = this.#document();
    try {
      const answer = await api.queuePrompt({
        prompt: document.nodes,
        client_id: this.socket.clientId,
        extra_data: { extra_pnginfo: { workflow: document } },
      });
      this.prompts.set(answer.prompt_id, document.nodes);
      advanceSeeds(this.graph);
      return true;
    } catch (error) {
      if (error.body) this.runState.setValidationErrors(error.body);
      else this.report(error.message);
      return false;
    }
  }

  autosave() {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(this.#document()));
  }

  /** Last session's graph, else the library's depth-to-image graph, else an empty canvas. */
  async restore() {
    try {
      const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null");
      if (saved && isGraphDocument(saved)) {
        const lastSaved = localStorage.getItem(SAVED_KEY);
        this.open(saved, saved.title);
        if (lastSaved) {
          this.saved = lastSaved; // what was unsaved before the reload still is
          localStorage.setItem(SAVED_KEY, lastSaved);
        }
        return;
      }
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
    click("new-button", () => this.newGraph());
    click("save-button", () => {
      this.files.save();
      this.markSaved();
    });
    click("load-button", () => this.files.pick());
    click("export-button", () => this.files.exportApi());
    click("node-menu-button", (event) => {
      if (this.nodeMenu.shown) this.nodeMenu.hide();
      else this.nodeMenu.showUnder(event.currentTarget);
    });
    const graphMenu = byTestId("graph-menu");
    let forgetGraphMenu = () => {};
    const hideGraphMenu = () => {
      forgetGraphMenu();
      graphMenu.hidden = true;
    };
    click("graph-menu-button", async () => {
      if (!graphMenu.hidden) return hideGraphMenu();
      graphMenu.hidden = false;
      forgetGraphMenu = closeOnEscape(hideGraphMenu);
      await this.files.fillLibraryMenu(graphMenu, hideGraphMenu);
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.queue();
      }
    });
    // A press outside a menu closes it (before the canvas sees the press, which may open the node search).
    document.addEventListener(
      "pointerdown",
      (event) => {
        if (!graphMenu.parentElement.contains(event.target)) hideGraphMenu();
        if (!byTestId("node-menu").parentElement.contains(event.target)) this.nodeMenu.hide();
      },
      true,
    );
    for (const tab of document.querySelectorAll(".sidebar .tabs button")) {
      tab.addEventListener("click", () => this.showTab(tab.dataset.tab));
    }
    this.batchInput.addEventListener("change", () => localStorage.setItem(BATCH_KEY, this.batchInput.value));
    this.titleInput.addEventListener("input", () => this.fitTitle());
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

/** Where a litegraph pointer event is on the graph. */
/** Link a node added from a dropped link's search to the slot the link was dragged from. */
function connectDropped(node, { node_from: from, node_to: to, slot_from: slot, slot_to: slotTo = slot }) {
  const index = (slots, wanted) =>
    typeof wanted === "number" ? wanted : slots.findIndex((slot) => slot === wanted || slot.name === wanted?.name);
  if (from) {
    const output = index(from.outputs, slot);
    if (from.outputs[output]) from.connectByType(output, node, from.outputs[output].type);
  } else if (to) {
    const input = index(to.inputs, slotTo);
    if (to.inputs[input]) to.connectByTypeOutput(input, node, to.inputs[input].type);
  }
}

const at = (event) => (event?.canvasX == null ? {} : { canvasX: event.canvasX, canvasY: event.canvasY });

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
