// depthgraph's depth view in ComfyUI's official front end. A node that shows the result or the depth map
// of a depth-to-image run gets "Open depth view" in its context menu and a button in the selection
// toolbox; the view (gray map, WebGL parallax, input vs output) is the one depthgraph's editor opens.
import { api } from "../../scripts/api.js";
import { app } from "../../scripts/app.js";
import { viewUrl } from "/web/js/api.js";
import { openDepthView } from "/web/js/depth_view.js";
import { depthViewSources } from "/web/js/panels.js";

const COMMAND = "depthgraph.openDepthView";
const STYLE_URL = "/web/depth_view.css";

// Every image a finished run saved (by URL) → that run's API prompt and outputs, and the node that saved it.
// A node's images are looked up here, so the menu only offers the view for what the node shows now.
const runsByImage = new Map();
let openView = null;

/** Remember the runs of a `/history` answer ({prompt id: entry}). */
function remember(history) {
  for (const entry of Object.values(history)) {
    const run = { prompt: entry.prompt[2], outputs: entry.outputs ?? {} };
    for (const [nodeId, output] of Object.entries(run.outputs)) {
      for (const image of output.images ?? []) runsByImage.set(viewUrl(image), { ...run, nodeId });
    }
  }
}

async function rememberRun(promptId) {
  const response = await api.fetchApi(`/history/${encodeURIComponent(promptId)}`);
  if (response.ok) remember(await response.json());
}

/** The {depth, result, input} URLs for the image a node shows now, or null if it has no depth map. */
function sourcesFor(node) {
  // Only the root graph's nodes (not groups, not nodes inside subgraphs): those ids are the history's.
  if (!node || app.rootGraph.getNodeById(node.id) !== node) return null;
  const shown = app.nodeOutputs?.[String(node.id)]?.images?.[0];
  const run = shown && runsByImage.get(viewUrl(shown));
  return run ? depthViewSources(run.prompt, run.outputs, run.nodeId) : null;
}

function open(sources) {
  openView?.close();
  openView = openDepthView(sources);
}

function selectedSources() {
  for (const node of Object.values(app.canvas?.selected_nodes ?? {})) {
    const sources = sourcesFor(node);
    if (sources) return sources;
  }
  return null;
}

app.registerExtension({
  name: "depthgraph.DepthView",
  commands: [
    {
      id: COMMAND,
      label: "Open depth view",
      tooltip: "The depth map, a 3-D parallax and input vs output of the selected depth-to-image result",
      icon: "pi pi-box",
      function: () => {
        const sources = selectedSources();
        if (sources) open(sources);
      },
    },
  ],

  setup() {
    document.head.append(Object.assign(document.createElement("link"), { rel: "stylesheet", href: STYLE_URL }));
    api.addEventListener("execution_success", ({ detail }) => rememberRun(detail.prompt_id).catch(console.warn));
    // Capture, so ComfyUI's own Escape handling does not act on the canvas behind the view.
    window.addEventListener(
      "keydown",
      (event) => {
        if (event.key !== "Escape" || !openView?.overlay.isConnected) return;
        event.preventDefault();
        event.stopImmediatePropagation();
        openView.close();
        openView = null;
      },
      { capture: true },
    );
  },

  getNodeMenuItems(node) {
    const sources = sourcesFor(node);
    return sources ? [null, { content: "Open depth view", callback: () => open(sources) }] : [];
  },

  getSelectionToolboxCommands(item) {
    return sourcesFor(item) ? [COMMAND] : [];
  },
});
