"""Browser tool: round-trip latency, hint conversion and memory under uploads.

  python tools/benchmark_app.py                       # iColoriT-T, random weights
  python tools/benchmark_app.py --icolorit_weights=W --hints=16 --repeats=30

Starts the app's server (Starlette on uvicorn) in this process and measures,
each against a baseline timed in the same run:
  * latency: uploads a 1-megapixel photo (a bundled image resized to 1224x816)
    and times POST /api/colorize over HTTP as the page sends it (all hints,
    JPEG preview back), median of --repeats; baseline: what a tool without
    the app's per-photo preparation does for every change, colorizing the
    photo from scratch (inference.colorize) and encoding the result;
  * hints: --many_hints rgb hints validated and converted to the model's
    hint grid together (what /api/colorize does) against converting them one
    at a time (what the server did before);
  * memory: the process's resident memory after uploading --uploads photos of
    --upload_megapixels each with a --memory_mb budget for photos; it must
    stay near the resident memory before the uploads plus the budget.
The last line gives the round trip against the 200 ms goal and the speedup
over the baseline.
"""

import io
import json
import os
import urllib.request

import _paths  # noqa: F401
import numpy as np
from _timing import machine, median_ms
from absl import app, flags
from PIL import Image


def _define_flags():
    """Only when run as a script: importing the module (tests) defines no flags."""
    flags.DEFINE_string("icolorit_weights", None, "iColoriT weights (default: random weights of "
                        "--preset; latency does not depend on the weights).")
    flags.DEFINE_string("preset", "T", "Model preset when no weights are given (T, S, B, ...).")
    flags.DEFINE_integer("hints", 10, "Hints sent with each request.")
    flags.DEFINE_integer("repeats", 20, "Timed requests (median reported).")
    flags.DEFINE_integer("many_hints", 4096, "Hints of the conversion benchmark.")
    flags.DEFINE_integer("uploads", 24, "Photos uploaded in the memory benchmark (0: skip).")
    flags.DEFINE_float("upload_megapixels", 12.0, "Their size.")
    flags.DEFINE_integer("memory_mb", 512, "The photo memory budget of that server.")


GOAL_MS = 200.0


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def _post(url, path, body, kind):
    request = urllib.request.Request(url + path, data=body, method="POST",
                                     headers={"Content-Type": kind})
    with urllib.request.urlopen(request) as response:
        return response.read()


def _jpeg(photo: Image.Image) -> bytes:
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def latency(model, name: str, hints: int, repeats: int, report) -> tuple[float, float]:
    from coltran_tf.app.api import App
    from coltran_tf.app.server import AppServer
    from coltran_tf.icolorit.inference import colorize

    photo = Image.open(os.path.join(_paths.REPO_ROOT, "data", "chelsea.png")).convert("RGB")
    photo = photo.resize((1224, 816), Image.BICUBIC)  # 1.0 megapixels
    rng = np.random.default_rng(0)
    chosen = [{"y": int(rng.integers(816)), "x": int(rng.integers(1224)),
               "rgb": [int(v) for v in rng.integers(0, 256, 3)]} for _ in range(hints)]
    server = AppServer(App(model, name)).start()
    try:
        session = json.loads(_post(server.url, "/api/session", _jpeg(photo),
                                   "image/jpeg"))["session"]
        body = json.dumps({"session": session, "hints": chosen, "format": "jpeg"}).encode()
        report(f"{machine()}; photo 1224x816 (1.0 MP), {hints} hints, "
               f"median of {repeats}")
        round_trip = median_ms(lambda: _post(server.url, "/api/colorize", body,
                                             "application/json"), repeats)
    finally:
        server.stop()
    report(f"app round trip (HTTP, prepared photo, JPEG preview): {round_trip:7.1f} ms")
    rgb = np.asarray(photo)
    as_tuples = [(h["y"], h["x"], h["rgb"]) for h in chosen]

    def from_scratch():
        Image.fromarray(colorize(model, rgb, as_tuples)).save(io.BytesIO(), "JPEG", quality=92)

    baseline = median_ms(from_scratch, repeats)
    report(f"baseline (colorize from scratch + JPEG, no HTTP): {baseline:7.1f} ms")
    return round_trip, baseline


def hint_conversion(count: int, report) -> tuple[float, float]:
    from coltran_tf.app.api import parse_hints
    from coltran_tf.icolorit.inference import hint_ab, hint_grid

    rng = np.random.default_rng(1)
    hints = [{"y": int(rng.integers(816)), "x": int(rng.integers(1224)),
              "rgb": [int(v) for v in rng.integers(0, 256, 3)]} for _ in range(count)]
    together = median_ms(lambda: hint_grid(*parse_hints(hints, 816, 1224), 816, 1224), 5, 1)
    one_by_one = median_ms(lambda: [hint_ab(h["rgb"]) for h in hints], 1, 1)
    report(f"{count} rgb hints validated and converted together: {together:.1f} ms; one at a "
           f"time: {one_by_one:.0f} ms ({one_by_one / together:.0f}x)")
    return together, one_by_one


def memory(model, uploads: int, megapixels: float, budget_mb: int, report) -> dict:
    from coltran_tf.app.api import App
    from coltran_tf.app.server import AppServer

    side = int((megapixels * 1e6 / 12) ** 0.5)
    width, height = 4 * side, 3 * side
    photos = [_jpeg(Image.fromarray(np.random.default_rng(i).integers(
        0, 256, (height // 16, width // 16, 3), np.uint8)).resize((width, height)))
        for i in range(3)]
    app_ = App(model, "memory", max_upload_bytes=64 * 2**20,
               max_memory_bytes=budget_mb * 2**20)
    server = AppServer(app_).start()
    try:
        before = _rss_mb()
        peak = before
        for i in range(uploads):
            _post(server.url, "/api/session", photos[i % len(photos)], "image/jpeg")
            peak = max(peak, _rss_mb())
        after = _rss_mb()
        held = app_.memory()
    finally:
        server.stop()
    report(f"memory: {uploads} uploads of {width}x{height} ({width * height / 1e6:.0f} MP), "
           f"budget {budget_mb} MB: {held['photos']} photos kept ({held['bytes'] / 2**20:.0f} "
           f"MB); resident {before:.0f} MB before, {after:.0f} MB after (peak {peak:.0f} MB): "
           f"+{after - before:.0f} MB for a {budget_mb} MB budget")
    return {"before": before, "after": after, "peak": peak, **held}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from coltran_tf.icolorit.convert import load_icolorit
    from coltran_tf.icolorit.model import build_icolorit

    f = flags.FLAGS
    report = lambda line: print(line, flush=True)  # noqa: E731
    model = load_icolorit(f.icolorit_weights) if f.icolorit_weights else build_icolorit(f.preset)
    name = f.icolorit_weights or f"iColoriT-{f.preset} (random weights)"
    round_trip, baseline = latency(model, name, f.hints, f.repeats, report)
    hint_conversion(f.many_hints, report)
    if f.uploads:
        memory(model, f.uploads, f.upload_megapixels, f.memory_mb, report)
    verdict = "met" if round_trip <= GOAL_MS else "NOT met"
    print(f"round trip {round_trip:.0f} ms for 1 MP (goal <= {GOAL_MS:.0f} ms: {verdict}); "
          f"{baseline / round_trip:.2f}x faster than colorizing from scratch")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
