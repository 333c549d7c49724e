// The canvas graph as the engine's API form and as a depthgraph file (API form plus layout), and back.
import { LiteGraph } from "@comfyorg/litegraph";
import { inputsOf, isWidgetSpec } from "./node_types.js";
import { showInputImage } from "./widgets.js";

const FORMAT = "depthgraph";
const FORMAT_VERSION = 1;
const COLUMN = 360;
const ROW_GAP = 40;

/** The graph in API form: {id: {class_type, inputs}}; wires become [source id, output index]. */
export function graphToPrompt(graph) {
  const prompt = {};
  for (const node of graph._nodes) {
    if (node.mode === LiteGraph.NEVER || !node.constructor.schema) continue;
    const inputs = {};
    for (const widget of node.widgets ?? []) {
      if (widget.options?.serialize === false || widget.type === "button") continue;
      inputs[widget.name] = widget.value;
    }
    for (const slot of node.inputs ?? []) {
      const link = slot.link != null ? graph.getLink(slot.link) : null;
      if (link) inputs[slot.name] = [String(link.origin_id), link.origin_slot];
    }
    prompt[String(node.id)] = { class_type: node.type, inputs, _meta: { title: node.title } };
  }
  return prompt;
}

/** The graph as a depthgraph file: the API form, the editor layout, a title and a description. */
export function graphToDocument(graph, { title = "", description = "" } = {}) {
  const places = {};
  for (const node of graph._nodes) {
    // The size the graph or the user gave, not the room an image preview took for this session.
    const size = node.layoutSize ?? node.size;
    const place = { pos: [...node.pos].map(Math.round), size: [...size].map(Math.round) };
    const controls = {};
    for (const widget of node.widgets ?? []) if (widget.controls) controls[widget.controls.name] = widget.value;
    if (Object.keys(controls).length) place.controls = controls;
    if (node.flags?.collapsed) place.collapsed = true;
    places[String(node.id)] = place;
  }
  return {
    format: FORMAT,
    version: FORMAT_VERSION,
    title,
    description,
    nodes: graphToPrompt(graph),
    layout: { nodes: places, groups: [] },
  };
}

/**
 * Replace the canvas graph with a depthgraph document (or a bare API form). Returns the problems met,
 * e.g. node types this server does not have; such nodes are left out and named.
 */
export function loadDocument(graph, document) {
  const prompt = document.format === FORMAT ? document.nodes : document;
  const places = document.layout?.nodes ?? {};
  const problems = [];
  graph.clear();
  const nodes = new Map();
  const missingPlaces = [];
  for (const [id, entry] of Object.entries(prompt ?? {})) {
    const node = LiteGraph.createNode(entry?.class_type);
    if (!node) {
      problems.push(`node ${id}: this server has no node type ${JSON.stringify(entry?.class_type)}`);
      continue;
    }
    if (/^\d+$/.test(id)) node.id = Number(id);
    const place = places[id];
    if (place?.pos) node.pos = [...place.pos];
    else missingPlaces.push(id);
    if (entry._meta?.title) node.title = entry._meta.title;
    graph.add(node, true);
    if (place?.size) node.setSize([Math.max(place.size[0], node.size[0]), Math.max(place.size[1], node.size[1])]);
    if (place?.collapsed) node.collapse(true);
    nodes.set(id, node);
    setWidgetValues(node, entry.inputs ?? {}, place?.controls ?? {}, problems, id);
  }
  for (const [id, entry] of Object.entries(prompt ?? {})) {
    const target = nodes.get(id);
    if (!target) continue;
    for (const [name, value] of Object.entries(entry.inputs ?? {})) {
      if (!isLink(value)) continue;
      const source = nodes.get(String(value[0]));
      const slot = target.findInputSlot(name);
      if (!source || slot < 0) {
        problems.push(`node ${id}: input ${name} links to node ${value[0]}, which is not in the graph`);
        continue;
      }
      source.connect(value[1], target, slot);
    }
  }
  graph.updateExecutionOrder();
  if (missingPlaces.length) arrange(nodes, prompt, new Set(missingPlaces));
  graph.setDirtyCanvas(true, true);
  return problems;
}

const isLink = (value) =>
  Array.isArray(value) && value.length === 2 && typeof value[1] === "number" && !Array.isArray(value[0]);

function setWidgetValues(node, inputs, controls, problems, id) {
  for (const widget of node.widgets ?? []) {
    if (widget.controls && controls[widget.controls.name]) widget.value = controls[widget.controls.name];
    if (!(widget.name in inputs) || isLink(inputs[widget.name])) continue;
    const value = inputs[widget.name];
    if (widget.type === "combo" && !widget.options.values.includes(value)) {
      problems.push(`node ${id}: ${widget.name} ${JSON.stringify(value)} is not one of this server's choices`);
      widget.options.values.push(value); // kept, so the run reports it and saving does not lose it
    }
    widget.value = value;
    if (node.constructor.schema && widget.type === "combo" && hasUpload(node, widget.name)) {
      showInputImage(node, value);
    }
  }
}

function hasUpload(node, name) {
  return inputsOf(node.constructor.schema).some(([input, spec]) => input === name && spec[1]?.image_upload);
}

/** Place unplaced nodes in columns by depth from the sources, left to right. */
function arrange(nodes, prompt, unplaced) {
  const depth = new Map();
  const depthOf = (id, seen = new Set()) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    let result = 0;
    for (const value of Object.values(prompt[id]?.inputs ?? {})) {
      if (isLink(value) && prompt[String(value[0])]) result = Math.max(result, depthOf(String(value[0]), seen) + 1);
    }
    depth.set(id, result);
    return result;
  };
  const columns = new Map();
  for (const id of nodes.keys()) {
    if (!unplaced.has(id)) continue;
    const column = depthOf(id);
    const node = nodes.get(id);
    const y = columns.get(column) ?? 40;
    node.pos = [40 + column * COLUMN, y];
    columns.set(column, y + node.size[1] + LiteGraph.NODE_TITLE_HEIGHT + ROW_GAP);
  }
}

/** Whether a parsed JSON value is something `loadDocument` can show. */
export function isGraphDocument(value) {
  if (!value || typeof value !== "object" || Array.isArray(value)) return false;
  if (value.format === FORMAT) return typeof value.nodes === "object";
  return Object.values(value).every((entry) => entry && typeof entry.class_type === "string");
}
