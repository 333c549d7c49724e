// Where a graph opens: the zoom and pan that show it readably.
import { LiteGraph } from "@comfyorg/litegraph";

const MARGIN = 40; // graph units around the graph
export const READABLE_ZOOM = 0.75; // the least a graph opens at: titles ~10 px, widget text ~9 px
// Below this litegraph draws nodes as blank boxes (its low_quality_zoom_threshold): zooming out from
// READABLE_ZOOM keeps text for a few steps before the overview turns to boxes.
const LOW_DETAIL_ZOOM = 0.5;

/** Litegraph's settings that go with `showGraph`: full detail at every zoom a graph opens at. */
export const canvasSettings = { low_quality_zoom_threshold: LOW_DETAIL_ZOOM };

/** A node's box in graph units, its title bar included: [left, top, right, bottom]. */
export function boxOf(node) {
  const title = LiteGraph.NODE_TITLE_HEIGHT;
  const width = node.flags?.collapsed ? LiteGraph.NODE_COLLAPSED_WIDTH : node.size[0];
  const height = node.flags?.collapsed ? 0 : node.size[1];
  return [node.pos[0], node.pos[1] - title, node.pos[0] + width, node.pos[1] + height];
}

/**
 * Zoom and pan `canvas` so the whole graph is in view, at 100% at most. A graph too big to fit at
 * READABLE_ZOOM opens at that zoom instead, from its start: its left end and top, where its sources are.
 */
export function showGraph(canvas, width, height) {
  const nodes = canvas.graph._nodes;
  const { ds } = canvas;
  if (!nodes.length) {
    ds.scale = 1;
    ds.offset = [0, 0];
    return canvas.setDirty(true, true);
  }
  const boxes = nodes.map(boxOf);
  const left = Math.min(...boxes.map((box) => box[0])) - MARGIN;
  const top = Math.min(...boxes.map((box) => box[1])) - MARGIN;
  const right = Math.max(...boxes.map((box) => box[2])) + MARGIN;
  const bottom = Math.max(...boxes.map((box) => box[3])) + MARGIN;
  const fit = Math.min(width / (right - left), height / (bottom - top));
  const scale = Math.min(1, Math.max(READABLE_ZOOM, canvas.low_quality_zoom_threshold, fit));
  // On each axis: centred when it fits, else from its start.
  const place = (start, extent, view) => -start + Math.max(0, (view / scale - extent) / 2);
  ds.scale = scale;
  ds.offset = [place(left, right - left, width), place(top, bottom - top, height)];
  canvas.setDirty(true, true);
}
