// Seeing depth: the grayscale map, a 3-D parallax view (WebGL, no library), input vs output compared.
import { loadImage } from "./api.js";
import { closeOnEscape } from "./overlays.js";
import { element } from "./panels.js";

const VERTEX_SHADER = `
attribute vec2 corner;
varying vec2 uv;
void main() {
  uv = vec2(corner.x * 0.5 + 0.5, 0.5 - corner.y * 0.5);
  gl_Position = vec4(corner, 0.0, 1.0);
}`;

// Each pixel looks up the colour it would show from a shifted eye: nearer pixels (whiter in the depth
// map) move more. A few fixed-point steps find where the shifted ray meets the depth surface, which
// keeps edges of near objects from smearing over what is behind them.
const FRAGMENT_SHADER = `
precision mediump float;
uniform sampler2D image;
uniform sampler2D depth;
uniform vec2 offset;
uniform float focus;
varying vec2 uv;
void main() {
  vec2 point = uv;
  for (int i = 0; i < 5; i++) {
    float near = texture2D(depth, point).r;
    point = uv - offset * (near - focus);
  }
  gl_FragColor = texture2D(image, clamp(point, 0.0, 1.0));
}`;

/** A WebGL parallax of `imageUrl` displaced by `depthUrl`; it follows the pointer and sways when idle. */
class Parallax {
  constructor(canvas) {
    this.canvas = canvas;
    this.gl = canvas.getContext("webgl", { preserveDrawingBuffer: true });
    this.strength = 0.04;
    this.focus = 0.5;
    this.pointer = null;
    this.frame = null;
  }

  async show(imageUrl, depthUrl) {
    const gl = this.gl;
    if (!gl) throw new Error("the 3-D view needs WebGL, which this browser has turned off");
    const [image, depth] = await Promise.all([loadImage(imageUrl), loadImage(depthUrl)]);
    this.canvas.width = image.naturalWidth;
    this.canvas.height = image.naturalHeight;
    this.program ??= this.#compile();
    gl.useProgram(this.program);
    this.#texture(0, image, "image");
    this.#texture(1, depth, "depth");
    this.canvas.onpointermove = (event) => {
      const box = this.canvas.getBoundingClientRect();
      this.pointer = [(event.clientX - box.left) / box.width - 0.5, (event.clientY - box.top) / box.height - 0.5];
    };
    this.canvas.onpointerleave = () => (this.pointer = null);
    this.#loop();
  }

  #compile() {
    const gl = this.gl;
    const program = gl.createProgram();
    for (const [kind, source] of [[gl.VERTEX_SHADER, VERTEX_SHADER], [gl.FRAGMENT_SHADER, FRAGMENT_SHADER]]) {
      const shader = gl.createShader(kind);
      gl.shaderSource(shader, source);
      gl.compileShader(shader);
      gl.attachShader(program, shader);
    }
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program));
    const buffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    const corner = gl.getAttribLocation(program, "corner");
    gl.enableVertexAttribArray(corner);
    gl.vertexAttribPointer(corner, 2, gl.FLOAT, false, 0, 0);
    return program;
  }

  #texture(unit, image, name) {
    const gl = this.gl;
    gl.activeTexture(gl.TEXTURE0 + unit);
    gl.bindTexture(gl.TEXTURE_2D, gl.createTexture());
    // Any size works in WebGL 1 with clamped edges and no mipmaps.
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, image);
    gl.uniform1i(gl.getUniformLocation(this.program, name), unit);
  }

  #loop() {
    const draw = (time) => {
      const gl = this.gl;
      const [x, y] = this.pointer ?? [0.5 * Math.sin(time / 900), 0.25 * Math.cos(time / 1300)];
      gl.viewport(0, 0, this.canvas.width, this.canvas.height);
      gl.uniform2f(gl.getUniformLocation(this.program, "offset"), x * this.strength * 2, y * this.strength * 2);
      gl.uniform1f(gl.getUniformLocation(this.program, "focus"), this.focus);
      gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
      this.frame = requestAnimationFrame(draw);
    };
    cancelAnimationFrame(this.frame);
    this.frame = requestAnimationFrame(draw);
  }

  stop() {
    cancelAnimationFrame(this.frame);
  }
}

function range(label, min, max, step, value, onInput, testid) {
  const input = element("input", { type: "range", min, max, step, value, testid });
  input.addEventListener("input", () => onInput(Number(input.value)));
  return element("label", {}, label, input);
}

/** Open the viewer for {depth, result, input} image URLs (input may be null); returns its overlay element,
 * `select(tab)` and `close()`. Escape closes it too. */
export function openDepthView({ depth, result, input }) {
  const depthPane = element("div", { class: "pane", testid: "depth-gray" }, element("img", { src: depth, alt: "depth map" }));
  const canvas = element("canvas", { testid: "depth-parallax" });
  const parallax = new Parallax(canvas);
  const source = element("select", {}, element("option", { value: "result" }, "output"), input ? element("option", { value: "input" }, "input") : null);
  const problem = element("p", { class: "problem" });
  const show3d = () =>
    parallax.show(source.value === "input" ? input : result, depth).catch((error) => (problem.textContent = error.message));
  source.addEventListener("change", show3d);
  const parallaxPane = element(
    "div",
    { class: "pane", hidden: "" },
    canvas,
    problem,
    element(
      "div",
      { class: "controls" },
      source,
      range("depth", 0, 0.12, 0.005, parallax.strength, (v) => (parallax.strength = v)),
      range("focus", 0, 1, 0.05, parallax.focus, (v) => (parallax.focus = v)),
    ),
  );
  const before = element("img", { src: input ?? depth, alt: "input" });
  const after = element("img", { src: result, alt: "output", class: "after" });
  const stack = element("div", { class: "compare" }, before, after);
  const clip = (percent) => (after.style.clipPath = `inset(0 0 0 ${percent}%)`);
  clip(50);
  const sideBySide = element("input", { type: "checkbox" });
  sideBySide.addEventListener("change", () => stack.classList.toggle("side-by-side", sideBySide.checked));
  const comparePane = element(
    "div",
    { class: "pane", hidden: "" },
    stack,
    element("div", { class: "controls" }, range("input ◂ ▸ output", 0, 100, 1, 50, clip, "compare-slider"), element("label", {}, sideBySide, "side by side")),
  );
  const panes = { depth: depthPane, "3-D": parallaxPane, compare: comparePane };
  const tabs = Object.keys(panes).map((name) =>
    element("button", { testid: `depth-tab-${name}`, onclick: () => select(name) }, name),
  );
  const select = (name) => {
    for (const [key, pane] of Object.entries(panes)) pane.hidden = key !== name;
    tabs.forEach((tab) => tab.classList.toggle("active", tab.textContent === name));
    if (name === "3-D") show3d();
    else parallax.stop();
  };
  const close = () => {
    forget();
    parallax.stop();
    overlay.remove();
  };
  const forget = closeOnEscape(close);
  const overlay = element(
    "div",
    { class: "depth-view", testid: "depth-view" },
    element("div", { class: "tabs", testid: "depth-tabs" }, ...tabs, element("button", { class: "close", onclick: close, testid: "depth-close" }, "close")),
    element("div", { class: "panes" }, depthPane, parallaxPane, comparePane),
  );
  document.body.append(overlay);
  select("depth");
  return { overlay, select, close };
}
