"""The README's screenshot of the browser tool, taken with Playwright and Chromium.

  python tools/app_screenshot.py --output=coltran_tf/demo/app_screenshot.jpg

Starts the app with the bundled demo weights (or --icolorit_weights /
--coltran_dir), opens a bundled photo, asks ColTran for suggestions, starts
from the first, adds two hints of its own (one picked from ColTran's likely
colours) and saves a screenshot of the page.
"""

import io
import os

import _paths  # noqa: F401
from absl import app, flags
from PIL import Image

flags.DEFINE_string("output", "coltran_tf/demo/app_screenshot.jpg", "Screenshot file.")
flags.DEFINE_string("photo", os.path.join(_paths.REPO_ROOT, "data", "chelsea.png"), "Photo.")
flags.DEFINE_string("icolorit_weights", None, "Default: the demo iColoriT-T.")
flags.DEFINE_string("coltran_dir", None, "Default: the demo ColTran stages.")
flags.DEFINE_string("chromium", "/usr/bin/chromium", "Chromium executable.")


def _wait_for(page, predicate: str, timeout: float = 300.0) -> None:
    """Polls `predicate` with page.evaluate: page.wait_for_function would run it
    through eval(), which the page's Content-Security-Policy forbids."""
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate(predicate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page never satisfied {predicate}")
        time.sleep(0.1)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from playwright.sync_api import sync_playwright

    from coltran_tf import demo
    from coltran_tf.app.api import App
    from coltran_tf.app.server import AppServer
    from coltran_tf.app.suggest import load_suggester
    from coltran_tf.icolorit.convert import load_icolorit

    f = flags.FLAGS
    weights = f.icolorit_weights or demo.icolorit_dir()
    server = AppServer(App(load_icolorit(weights), os.path.relpath(weights),
                           coltran=load_suggester(f.coltran_dir or demo.coltran_dir()))).start()
    url = server.url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=f.chromium,
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        page.set_default_timeout(300_000)
        page.goto(url)
        page.set_input_files("#file", f.photo)
        _wait_for(page, "Number(document.body.dataset.renders || 0) >= 1")
        page.click("#suggest")
        _wait_for(page, "document.querySelectorAll('#suggestions img').length === 3")
        count = page.evaluate("Number(document.body.dataset.renders)")
        page.locator("#suggestions img").first.click()
        _wait_for(page, f"Number(document.body.dataset.renders) > {count}")
        box = page.locator("#view").bounding_box()
        for fx, fy in ((0.42, 0.22), (0.62, 0.8)):
            count = page.evaluate("Number(document.body.dataset.renders)")
            page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
            _wait_for(page, f"Number(document.body.dataset.renders) > {count}")
        page.wait_for_selector("#likely .swatch")
        count = page.evaluate("Number(document.body.dataset.renders)")
        page.locator("#likely div").first.click()
        _wait_for(page, f"Number(document.body.dataset.renders) > {count}")
        page.evaluate("window.scrollTo(0, 0)")
        png = page.screenshot(full_page=True)
        browser.close()
    server.stop()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    os.makedirs(os.path.dirname(os.path.abspath(f.output)), exist_ok=True)
    image.save(f.output, quality=88)
    print(f"Wrote {f.output} ({image.size[0]}x{image.size[1]})")


if __name__ == "__main__":
    app.run(main)
