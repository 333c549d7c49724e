// Node types from the server's /object_info: sockets, widgets and colours per socket type.
import { LGraphCanvas, LGraphNode, LiteGraph } from "@comfyorg/litegraph";
import { addMultilineWidget, addSeedControl, addUploadWidget, drawImages } from "./widgets.js";

export const SOCKET_COLOURS = {
  IMAGE: "#64b5f6",
  MASK: "#81c784",
  DEPTH: "#b388ff",
  LATENT: "#ff9cf9",
  CONDITIONING: "#ffa931",
  MODEL: "#b39ddb",
  CLIP: "#ffd500",
  VAE: "#ff6e6e",
  DEPTH_MODEL: "#4dd0e1",
};
const WIDGET_TYPES = new Set(["INT", "FLOAT", "STRING", "BOOLEAN"]);

/** True when an input spec is edited on the node (a widget) rather than wired (a socket). */
export function isWidgetSpec([type]) {
  return Array.isArray(type) || WIDGET_TYPES.has(type);
}

/** Every input of a schema in order, as [name, spec, required]. */
export function inputsOf(info) {
  const order = info.input_order ?? {};
  const inputs = [];
  for (const group of ["required", "optional"]) {
    const specs = info.input?.[group] ?? {};
    for (const name of order[group] ?? Object.keys(specs)) inputs.push([name, specs[name], group === "required"]);
  }
  return inputs;
}

function addWidgetFor(node, name, [type, options = {}]) {
  const change = () => node.graph?.change();
  const tooltip = options.tooltip;
  let widget;
  if (Array.isArray(type)) {
    const values = [...type];
    widget = node.addWidget("combo", name, options.default ?? values[0] ?? "", change, { values });
    if (options.image_upload) addUploadWidget(node, widget);
  } else if (type === "INT" || type === "FLOAT") {
    const integer = type === "INT";
    const step = options.step ?? (integer ? 1 : 0.01);
    const settings = {
      min: options.min,
      max: options.max,
      step2: step, // litegraph's plain `step` is ten times the increment, for history's sake
      precision: integer ? 0 : Math.max(0, -Math.floor(Math.log10(step))),
      round: integer ? 1 : undefined,
    };
    const kind = options.display === "slider" ? "slider" : "number";
    widget = node.addWidget(kind, name, options.default ?? 0, change, settings);
    if (integer && /seed$/.test(name)) addSeedControl(node, widget);
  } else if (type === "STRING" && options.multiline) {
    widget = addMultilineWidget(node, name, options.default ?? "", tooltip);
    widget.callback = change;
  } else if (type === "STRING") {
    widget = node.addWidget("text", name, options.default ?? "", change, {});
  } else if (type === "BOOLEAN") {
    widget = node.addWidget("toggle", name, options.default ?? false, change, {});
  }
  if (widget) widget.tooltip = tooltip;
  return widget;
}

/**
 * Register one litegraph node class per node of `objectInfo`. `hooks.drawForeground(node, ctx)` draws
 * run state (progress, errors) on every node.
 */
export function registerNodeTypes(objectInfo, hooks = {}) {
  for (const key of Object.keys(LiteGraph.registered_node_types)) LiteGraph.unregisterNodeType(key);
  for (const [type, colour] of Object.entries(SOCKET_COLOURS)) {
    LGraphCanvas.link_type_colors[type] = colour;
  }
  for (const [className, info] of Object.entries(objectInfo)) {
    class DepthgraphNode extends LGraphNode {
      constructor(title) {
        super(title);
        this.serialize_widgets = true;
        for (const [name, spec, required] of inputsOf(info)) {
          if (isWidgetSpec(spec)) {
            addWidgetFor(this, name, spec);
          } else {
            const slot = this.addInput(name, spec[0]);
            if (!required) slot.shape = LiteGraph.CIRCLE_SHAPE; // hollow: may be left open
          }
        }
        info.output.forEach((type, index) => this.addOutput(info.output_name?.[index] ?? type, type));
        this.setSize(this.computeSize());
      }

      /** Any size set on purpose (by the document, the user, the schema) is the one saved. */
      onResize(size) {
        this.layoutSize = [...size];
      }

      onDrawForeground(ctx) {
        drawImages(this, ctx);
        hooks.drawForeground?.(this, ctx);
      }
    }
    Object.assign(DepthgraphNode, {
      title: info.display_name ?? className,
      comfyClass: className,
      description: info.description,
      schema: info,
    });
    LiteGraph.registerNodeType(className, DepthgraphNode);
    DepthgraphNode.category = info.category || "other";
  }
}

/** Colours of connected slots on `canvas`, so sockets wear their type's colour. */
export function colourSockets(canvas) {
  for (const [type, colour] of Object.entries(SOCKET_COLOURS)) {
    canvas.default_connection_color_byType[type] = colour;
    canvas.default_connection_color_byTypeOff[type] = `${colour}88`;
  }
}
