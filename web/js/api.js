// The server's HTTP routes and its event socket, as the editor uses them.

/** Raised for a non-2xx answer; `body` is the parsed JSON error (message, node_errors) when there is one. */
export class ApiError extends Error {
  constructor(status, body, fallback) {
    super(body?.error?.message ?? body?.error ?? fallback);
    this.status = status;
    this.body = body;
  }
}

async function request(path, options = {}) {
  const response = await fetch(path, options);
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) throw new ApiError(response.status, body, `${path}: HTTP ${response.status}`);
  return body;
}

const postJson = (path, data) =>
  request(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data) });

export const api = {
  objectInfo: () => request("/object_info"),
  queuePrompt: (body) => postJson("/prompt", body),
  queue: () => request("/queue"),
  deleteQueued: (ids) => postJson("/queue", { delete: ids }),
  interrupt: () => postJson("/interrupt", {}),
  history: (maxItems = 64) => request(`/history?max_items=${maxItems}`),
  library: () => request("/graphs"),
  libraryGraph: (name) => request(`/graphs/${encodeURIComponent(name)}`),
  /** The graph inside a dropped or picked file (JSON of any kind, or a PNG saved by SaveImage). */
  readGraphFile: (file) =>
    request(`/graph/read?filename=${encodeURIComponent(file.name)}`, { method: "POST", body: file }),
  uploadImage(file) {
    const form = new FormData();
    form.append("image", file, file.name || "pasted.png");
    return request("/upload/image", { method: "POST", body: form });
  },
  /**
   * Store a painted mask as ComfyUI's mask editor does: `blob` is a PNG whose alpha is the mask
   * (transparent = masked); the server puts it on a copy of `original` ({filename, subfolder, type}).
   */
  uploadMask(blob, filename, original) {
    const form = new FormData();
    form.append("image", blob, filename);
    form.append("original_ref", JSON.stringify(original));
    form.append("type", "input");
    form.append("subfolder", "clipspace");
    return request("/upload/mask", { method: "POST", body: form });
  },
};

/** The stored-image reference ({filename, subfolder, type}) of an input-folder name such as `clipspace/a.png`. */
export function inputImage(name) {
  const slash = name.lastIndexOf("/");
  return { filename: name.slice(slash + 1), subfolder: slash > 0 ? name.slice(0, slash) : "", type: "input" };
}

/** The URL of a stored image ({filename, subfolder, type}). */
export function viewUrl(image) {
  const query = new URLSearchParams({
    filename: image.filename,
    subfolder: image.subfolder ?? "",
    type: image.type ?? "output",
  });
  return `/view?${query}`;
}

/**
 * The WebSocket of one client id: JSON events by type, binary preview frames as image blobs.
 * Reconnects (with the same id, so the server keeps routing our prompts' events here) after a drop.
 */
export class EventSocket extends EventTarget {
  constructor() {
    super();
    this.clientId = sessionStorage.getItem("depthgraph.clientId") ?? crypto.randomUUID();
    sessionStorage.setItem("depthgraph.clientId", this.clientId);
    this.connected = false;
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws?clientId=${this.clientId}`);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      // As ComfyUI's front end does: saying what it supports also asks for step previews.
      socket.send(JSON.stringify({ type: "feature_flags", data: { supports_preview_metadata: false } }));
      this.#setConnected(true);
    };
    socket.onclose = () => {
      this.#setConnected(false);
      setTimeout(() => this.connect(), 1000);
    };
    socket.onmessage = (message) => {
      if (typeof message.data === "string") {
        const { type, data } = JSON.parse(message.data);
        this.dispatchEvent(new CustomEvent(type, { detail: data }));
      } else {
        this.#preview(message.data);
      }
    };
  }

  #setConnected(connected) {
    this.connected = connected;
    this.dispatchEvent(new CustomEvent("connection", { detail: { connected } }));
  }

  // Binary frame: 4-byte event type (1 = preview image), 4-byte format (1 JPEG, 2 PNG), the image.
  #preview(buffer) {
    const view = new DataView(buffer);
    if (buffer.byteLength < 8 || view.getUint32(0) !== 1) return;
    const type = view.getUint32(4) === 2 ? "image/png" : "image/jpeg";
    const blob = new Blob([buffer.slice(8)], { type });
    this.dispatchEvent(new CustomEvent("preview", { detail: { blob } }));
  }
}

/** The image at `url`, once loaded (for drawing it on a canvas or into a texture). */
export function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`cannot load ${url}`));
    image.src = url;
  });
}
