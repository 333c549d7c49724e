"""Seeing depth: the grayscale map, the WebGL parallax, and the input/output comparison."""

from __future__ import annotations

from tests.web.conftest import Editor


def test_a_depth_run_opens_in_the_depth_view_as_gray_map_parallax_and_comparison(editor: Editor) -> None:
    editor.expect_problem("GPU stall due to ReadPixels")  # the test reads the WebGL canvas back
    editor.set_widget(8, "steps", 2)
    editor.set_widget(8, "seed", 2024)
    editor.evaluate(
        """() => {
            window.done = false;
            window.depthgraph.socket.addEventListener("execution_success", () => (window.done = true));
        }"""
    )
    editor.testid("queue-button").click()
    editor.page.wait_for_function("() => window.done")
    button = editor.page.locator("[data-testid=gallery-depth]").first
    button.wait_for()
    button.click()
    view = editor.testid("depth-view")
    assert view.is_visible()

    gray = editor.testid("depth-gray").locator("img")
    gray.wait_for()
    editor.page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=gray.element_handle())
    assert "depth2img_depth" in (gray.get_attribute("src") or "")
    editor.screenshot("depth-gray")
    tab_bar = editor.testid("depth-tabs")
    places = [tab_bar.bounding_box()]  # where the tab bar is on each tab: always the same place

    editor.testid("depth-tab-3-D").click()
    canvas = editor.testid("depth-parallax")
    editor.page.wait_for_function(
        "canvas => canvas.width > 0 && canvas.height > 0", arg=canvas.element_handle()
    )
    editor.page.wait_for_timeout(300)  # a few animation frames
    colours = editor.evaluate(
        """(canvas) => {
            const gl = canvas.getContext("webgl");
            const pixels = new Uint8Array(canvas.width * canvas.height * 4);
            gl.readPixels(0, 0, canvas.width, canvas.height, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
            return new Set(Array.from(pixels.filter((_, i) => i % 4 === 0))).size;
        }""",
        canvas.element_handle(),
    )
    assert colours > 50  # the photo-like result drawn, not a blank or single-colour canvas
    # Moving the pointer over the view moves the picture.
    box = canvas.bounding_box()
    snapshot = "(canvas) => canvas.toDataURL()"
    editor.page.mouse.move(box["x"] + 5, box["y"] + 5)
    editor.page.wait_for_timeout(100)
    left = editor.evaluate(snapshot, canvas.element_handle())
    editor.page.mouse.move(box["x"] + box["width"] - 5, box["y"] + box["height"] - 5)
    editor.page.wait_for_timeout(100)
    assert editor.evaluate(snapshot, canvas.element_handle()) != left
    editor.screenshot("depth-parallax")
    places.append(tab_bar.bounding_box())

    editor.testid("depth-tab-compare").click()
    slider = editor.testid("compare-slider")
    slider.fill("20")
    after = editor.page.locator(".compare .after")
    assert after.evaluate("img => img.style.clipPath") == "inset(0px 0px 0px 20%)"
    editor.screenshot("depth-compare")
    places.append(tab_bar.bounding_box())
    editor.page.get_by_text("side by side").click()
    assert "side-by-side" in (editor.page.locator(".compare").get_attribute("class") or "")
    editor.screenshot("depth-side-by-side")
    places.append(tab_bar.bounding_box())
    editor.testid("depth-tab-depth").click()
    places.append(tab_bar.bounding_box())
    assert all(place == places[0] for place in places), places

    editor.page.keyboard.press("Escape")
    assert editor.testid("depth-view").count() == 0
    button.click()
    editor.testid("depth-close").click()
    assert editor.testid("depth-view").count() == 0
