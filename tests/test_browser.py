"""The browser tool in a real browser: Playwright driving Debian's Chromium.

Loads a photo, places hints, picks a colour from the ab gamut and from
ColTran's likely colours, undoes and redoes, drags a hint, toggles
before/after, deletes a hint with a right-click, saves, clears and loads the
hints, starts from a ColTran suggestion, downloads the PNG, drops another
photo on the page and shows an upload error. A screenshot is written to
$COLTRAN_TEST_ARTIFACTS (default: test-artifacts/ in the repository).

Needs `playwright` (requirements.txt) and /usr/bin/chromium (`.ci/run` installs
it with apt). Outside CI the test skips when either is missing; under CI
(CI=true) it fails instead, so that the browser test cannot silently vanish.
"""

import base64
import io
import json
import os
import time

import numpy as np
import pytest
from PIL import Image

from coltran_tf.app.api import App
from coltran_tf.app.server import AppServer
from coltran_tf.app.suggest import load_suggester
from coltran_tf.icolorit.model import build_icolorit
from conftest import REPO_ROOT, STAGES, write_tiny_models

CHROMIUM = "/usr/bin/chromium"
PHOTO = os.path.join(REPO_ROOT, "data", "chelsea.png")
ARTIFACTS = os.environ.get("COLTRAN_TEST_ARTIFACTS", os.path.join(REPO_ROOT, "test-artifacts"))


def _require_browser():
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -r requirements.txt)")
    if not os.path.exists(CHROMIUM):
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    _require_browser()
    coltran_dir = write_tiny_models(tmp_path_factory.mktemp("coltran"), STAGES[:2])
    app = App(build_icolorit("micro"), "micro", coltran=load_suggester(coltran_dir))
    # With a token, as for a --host other than loopback: every API call the page
    # makes below must carry the token it read from the URL.
    server = AppServer(app, token="a-token-from-the-printed-url").start()
    yield server.page_url
    server.stop()


@pytest.fixture(scope="module")
def page(url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport={"width": 1280, "height": 800},
                                      accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.csp_violations = []  # the page must run under its own Content-Security-Policy
        page.on("console", lambda message: page.csp_violations.append(message.text)
                if "Content Security Policy" in message.text else None)
        page.goto(url)
        yield page
        browser.close()


def _wait_for(page, predicate: str, timeout: float = 60.0) -> None:
    """Polls `predicate` (an expression or a function) until it is truthy.
    page.wait_for_function would evaluate it with eval(), which the page's
    Content-Security-Policy forbids, as it should."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(predicate):
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {predicate[:80]}")
        page.wait_for_timeout(50)


def _renders(page) -> int:
    return int(page.evaluate("Number(document.body.dataset.renders || 0)"))


def _wait_render(page, after: int) -> None:
    _wait_for(page, f"Number(document.body.dataset.renders || 0) > {after}")


def _result(page) -> np.ndarray:
    """The colorized image the page shows (without the hint markers)."""
    data = page.evaluate("""() => {
        const c = document.createElement("canvas");
        c.width = state.result.width; c.height = state.result.height;
        c.getContext("2d").drawImage(state.result, 0, 0);
        return c.toDataURL("image/png");
    }""")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data.split(",")[1]))).convert("RGB"),
                      np.int16)


def _click_photo(page, fx: float, fy: float) -> None:
    box = page.locator("#view").bounding_box()
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])


def test_colorize_in_the_browser(page, tmp_path):
    width, height = Image.open(PHOTO).size
    page.set_input_files("#file", PHOTO)
    _wait_render(page, 0)
    plain = _result(page)
    assert plain.shape == (height, width, 3)
    assert page.evaluate("state.hints.length") == 0

    # A hint with the current colour: the result changes.
    count = _renders(page)
    _click_photo(page, 0.3, 0.4)
    _wait_render(page, count)
    assert page.evaluate("state.hints.length") == 1
    hinted = _result(page)
    assert np.abs(hinted - plain).mean() > 0.5, "placing a hint did not change the result"

    # The panel shows the gamut at the hint's lightness and ColTran's likely colours.
    page.wait_for_selector("#likely .swatch")
    assert page.locator("#likely .swatch").count() >= 1
    _wait_for(page, """() => {
        const g = document.getElementById("gamut").getContext("2d")
            .getImageData(0, 0, 129, 129).data;
        for (let i = 3; i < g.length; i += 4) if (g[i] > 0) return true;
        return false; }""")
    before_pick = page.evaluate("state.hints[0].rgb")
    count = _renders(page)
    page.locator("#gamut").click(position={"x": 129, "y": 129})  # a = b = 0: in every gamut
    _wait_render(page, count)
    picked = page.evaluate("state.hints[0].rgb")
    assert picked != before_pick and max(picked) - min(picked) <= 3  # a grey of its lightness
    count = _renders(page)
    page.locator("#likely div").first.click()
    _wait_render(page, count)

    # A second hint, then undo all the way: the result returns to the plain one.
    count = _renders(page)
    _click_photo(page, 0.7, 0.6)
    _wait_render(page, count)
    assert page.evaluate("state.hints.length") == 2
    page.screenshot(path=os.path.join(_artifacts(), "browser_hints.png"))
    for expected in (1, 1, 1, 0):  # new hint, likely colour, gamut colour, first hint
        count = _renders(page)
        page.click("#undo")
        _wait_render(page, count)
        assert page.evaluate("state.hints.length") == expected
    assert np.abs(_result(page) - plain).max() == 0
    count = _renders(page)
    page.click("#redo")
    _wait_render(page, count)
    assert page.evaluate("state.hints.length") == 1

    # Drag the hint somewhere else, see before/after, right-click it away, undo that.
    box = page.locator("#view").bounding_box()
    start = page.evaluate("[state.hints[0].x, state.hints[0].y]")
    scale = box["width"] / width
    history = page.evaluate("state.undo.length")
    page.mouse.click(box["x"] + (start[0] + 0.5) * scale, box["y"] + (start[1] + 0.5) * scale)
    assert page.evaluate("[state.selected, state.undo.length]") == [0, history]  # select only
    count = _renders(page)
    page.mouse.move(box["x"] + (start[0] + 0.5) * scale, box["y"] + (start[1] + 0.5) * scale)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.8 * box["width"], box["y"] + 0.2 * box["height"], steps=5)
    page.mouse.up()
    _wait_render(page, count)
    moved = page.evaluate("[state.hints[0].x, state.hints[0].y]")
    assert page.evaluate("state.hints.length") == 1 and moved[0] > start[0] + 100
    assert page.evaluate("state.undo.length") == history + 1  # the drag is one undo step
    page.click("#toggle")
    assert page.evaluate("state.showOriginal") is True
    page.click("#toggle")
    count = _renders(page)
    page.mouse.click(box["x"] + (moved[0] + 0.5) * scale, box["y"] + (moved[1] + 0.5) * scale,
                     button="right")
    _wait_render(page, count)
    assert page.evaluate("state.hints.length") == 0
    count = _renders(page)
    page.click("#undo")
    _wait_render(page, count)
    assert page.evaluate("[state.hints[0].x, state.hints[0].y]") == moved

    # Save the hints as JSON, clear, load them back.
    with page.expect_download() as download:
        page.click("#save")
    saved = tmp_path / "hints.json"
    download.value.save_as(saved)
    assert json.loads(saved.read_text())["hints"][0]["x"] == moved[0]
    count = _renders(page)
    page.click("#clear")
    _wait_render(page, count)
    assert page.evaluate("state.hints.length") == 0
    count = _renders(page)
    page.set_input_files("#load", str(saved))
    _wait_render(page, count)
    assert page.evaluate("[state.hints[0].x, state.hints[0].y]") == moved

    # ColTran's suggestions: three colourings; one click starts from its hints.
    page.click("#suggest")
    _wait_for(page, "document.querySelectorAll('#suggestions img').length === 3")
    count = _renders(page)
    page.locator("#suggestions img").first.click()
    _wait_render(page, count)
    assert page.evaluate("state.hints.length") > 4

    # Download the full-resolution PNG.
    with page.expect_download() as download:
        page.click("#download")
    path = tmp_path / "colorized.png"
    download.value.save_as(path)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (width, height)
    page.screenshot(path=os.path.join(_artifacts(), "browser.png"))

    # Drag and drop another photo onto the page: a new session at its size.
    with open(os.path.join(REPO_ROOT, "data", "microaneurysms.png"), "rb") as f:
        dropped = base64.b64encode(f.read()).decode()
    session = page.evaluate("state.session")
    page.evaluate("""(data) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
        document.body.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer,
                                                           bubbles: true, cancelable: true }));
    }""", dropped)
    _wait_for(page, f"state.session !== {json.dumps(session)} && state.result !== null")
    assert page.evaluate("[state.width, state.height, state.hints.length]") == [102, 102, 0]

    # A TIFF with no type the browser knows (it cannot show TIFFs): the server reads it
    # by its content and sends the page a copy for the before/after view.
    tiff = tmp_path / "scan.tif"
    Image.open(os.path.join(REPO_ROOT, "data", "camera.png")).resize((96, 80)).save(tiff)
    session = page.evaluate("state.session")
    page.evaluate("""(data) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "SCAN.TIF", { type: "" }));
        document.body.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer,
                                                           bubbles: true, cancelable: true }));
    }""", base64.b64encode(tiff.read_bytes()).decode())
    _wait_for(page, f"state.session !== {json.dumps(session)} && state.result !== null")
    assert page.evaluate("[state.width, state.height, state.original.width]") == [96, 80, 96]
    assert page.inner_text("#error") == ""

    # A file that is not an image: the page shows the server's message.
    not_image = tmp_path / "notes.png"
    not_image.write_bytes(b"this is not a png")
    page.set_input_files("#file", str(not_image))
    _wait_for(page, "document.getElementById('error').textContent.length > 0")
    assert "Not an image" in page.inner_text("#error")
    assert page.csp_violations == []  # all of the above ran under the page's CSP


def _artifacts() -> str:
    os.makedirs(ARTIFACTS, exist_ok=True)
    return ARTIFACTS
