"""Editor responsiveness: pan and zoom frame times on big graphs in headless Chromium, and the weight of
the page's own code.

    python benchmarks/editor_frames.py [--nodes 300 1000] [--frames 60]

A real server (tiny model, ephemeral loopback port) serves the editor to Debian's Chromium driven by
Playwright. The graph is a LoadImage followed by a chain of ImageInvert nodes laid out on a grid
(every node has a widget, sockets and a link). Each frame moves (pan) or rescales (zoom, 2% a frame)
the view and redraws both canvas layers synchronously, timed with `performance.now()`; the table
gives the median and 95th percentile per view: "fit" (the whole graph, litegraph's low-detail mode
below 40% zoom) and "100%" (full detail, the nodes that fit the 1400×850 window).

Target: every frame under 16 ms (60 fps) for 300 nodes; the page's own JS, CSS and HTML (without the
vendored litegraph) under 100 KB.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
COLUMNS = 20

# Runs in the page: `frames` pans then `frames` zooms at the view already set; milliseconds per frame.
FRAME_SCRIPT = """([frames]) => {
    const canvas = window.depthgraph.canvas;
    const timed = (step) => {
        const times = [];
        for (let i = 0; i < frames; i++) {
            const start = performance.now();
            step(i);
            canvas.draw(true, true);
            times.push(performance.now() - start);
        }
        return times;
    };
    const pan = timed((i) => { canvas.ds.offset[0] += i % 20 < 10 ? 6 : -6; canvas.ds.offset[1] += 2; });
    const box = canvas.canvas;
    const centre = [box.width / 2, box.height / 2];
    const factor = (i) => (i % 20 < 10 ? 1.02 : 1 / 1.02);
    const zoom = timed((i) => canvas.ds.changeScale(canvas.ds.scale * factor(i), centre));
    return {pan, zoom};
}"""


def big_graph(nodes: int) -> dict[str, Any]:
    """A depthgraph document: LoadImage then `nodes - 1` ImageInvert in a chain, on a grid."""
    prompt: dict[str, Any] = {"1": {"class_type": "LoadImage", "inputs": {"image": "example.jpg"}}}
    for index in range(2, nodes + 1):
        prompt[str(index)] = {"class_type": "ImageInvert", "inputs": {"image": [str(index - 1), 0]}}
    places = {
        str(index): {"pos": [((index - 1) % COLUMNS) * 260, ((index - 1) // COLUMNS) * 160]}
        for index in range(1, nodes + 1)
    }
    layout = {"nodes": places, "groups": []}
    return {
        "format": "depthgraph",
        "version": 1,
        "title": f"{nodes} nodes",
        "nodes": prompt,
        "layout": layout,
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(page: Any, nodes: int, frames: int = 60) -> dict[str, dict[str, float]]:
    """Frame times (ms) for the graph of `nodes` nodes, fitted and at 100%: {view: {figure: ms}}."""
    page.evaluate("(doc) => window.depthgraph.open(doc, 'benchmark')", big_graph(nodes))
    results: dict[str, dict[str, float]] = {}
    for view, scale in (("fit", None), ("100%", 1.0)):
        page.evaluate(
            "(scale) => { const c = window.depthgraph.canvas; window.depthgraph.fitView();"
            " if (scale) { c.ds.scale = scale; c.ds.offset = [0, 0]; } c.draw(true, true); }",
            scale,
        )
        times = page.evaluate(FRAME_SCRIPT, [frames])
        for kind in ("pan", "zoom"):
            results.setdefault(view, {})[f"{kind} median"] = percentile(times[kind], 0.5)
            results[view][f"{kind} p95"] = percentile(times[kind], 0.95)
    return results


def page_weight(root: Path = WEB_ROOT) -> dict[str, int]:
    """Bytes of the page's own files (HTML, JS, CSS): the vendored library and the extension for
    ComfyUI's front end (web/comfyui/, which the page never loads) left out."""
    return {
        str(path.relative_to(root)): path.stat().st_size
        for path in sorted(root.rglob("*"))
        if path.suffix in (".js", ".css", ".html")
        and not {"vendor", "node_modules", "comfyui"} & set(path.relative_to(root).parts)
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()

    import shutil
    import tempfile

    from depthgraph.engine.app.config import Settings
    from playwright.sync_api import sync_playwright

    from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, ROOT, start_server

    weights = page_weight()
    print(f"page's own code: {sum(weights.values()) / 1000:.1f} KB in {len(weights)} files (target < 100 KB)")
    with tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder)
        (workspace / "input").mkdir()
        shutil.copy(ROOT / "input" / "example.jpg", workspace / "input" / "example.jpg")
        server = start_server(Settings.under(workspace, device="cpu", graphs_dir=ROOT / "graphs"))
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 850})
                page.goto(server.url + "/")
                page.wait_for_selector("body[data-ready=true]")
                header = ("nodes", 6), ("view", 5), ("pan median", 11), ("pan p95", 8), ("zoom median", 12)
                print(" ".join(f"{name:>{width}}" for name, width in header), f"{'zoom p95':>9}")
                for nodes in args.nodes:
                    for view, figures in measure(page, nodes, args.frames).items():
                        print(
                            f"{nodes:>6} {view:>5} {figures['pan median']:>8.2f} ms"
                            f" {figures['pan p95']:>5.2f} ms"
                            f" {figures['zoom median']:>9.2f} ms {figures['zoom p95']:>6.2f} ms"
                        )
                browser.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
