"""Browser tool latency: one preview round trip for a 1-megapixel photo.

  python tools/benchmark_app.py                       # iColoriT-T, random weights
  python tools/benchmark_app.py --icolorit_weights=W --hints=16 --repeats=30

Starts the app's server in this process, uploads a 1-megapixel photo (a
bundled image resized to 1224x816) and times POST /api/colorize over HTTP as
the page sends it (all hints, JPEG preview back), median of --repeats. The
baseline, timed in the same run on the same model, is what a tool without the
app's per-photo preparation does for every change: colorize the photo from
scratch (inference.colorize) and encode the result. The last line gives the
round trip against the 200 ms goal and the speedup over the baseline.
"""

import io
import json
import os
import threading
import urllib.request

import _paths  # noqa: F401
from _timing import median_ms
import numpy as np
from absl import app, flags
from PIL import Image

flags.DEFINE_string("icolorit_weights", None, "iColoriT weights (default: random weights of "
                    "--preset; latency does not depend on the weights).")
flags.DEFINE_string("preset", "T", "Model preset when no weights are given (T, S, B, ...).")
flags.DEFINE_integer("hints", 10, "Hints sent with each request.")
flags.DEFINE_integer("repeats", 20, "Timed requests (median reported).")

GOAL_MS = 200.0


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from coltran_tf.app.server import App, make_server
    from coltran_tf.icolorit.convert import load_weights
    from coltran_tf.icolorit.inference import colorize
    from coltran_tf.icolorit.model import build_icolorit

    f = flags.FLAGS
    model = load_weights(f.icolorit_weights) if f.icolorit_weights else build_icolorit(f.preset)
    photo = Image.open(os.path.join(_paths.REPO_ROOT, "data", "chelsea.png")).convert("RGB")
    photo = photo.resize((1224, 816), Image.BICUBIC)  # 1.0 megapixels
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=92)
    rng = np.random.default_rng(0)
    hints = [{"y": int(rng.integers(816)), "x": int(rng.integers(1224)),
              "rgb": [int(v) for v in rng.integers(0, 256, 3)]} for _ in range(f.hints)]

    server = make_server(App(model, f.icolorit_weights or f"iColoriT-{f.preset} (random weights)"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"

    def post(path, body, kind):
        request = urllib.request.Request(url + path, data=body, method="POST",
                                         headers={"Content-Type": kind})
        with urllib.request.urlopen(request) as response:
            return response.read()

    session = json.loads(post("/api/session", buffer.getvalue(), "image/jpeg"))["session"]
    body = json.dumps({"session": session, "hints": hints, "format": "jpeg"}).encode()
    print(f"CPU cores: {os.cpu_count()}; photo 1224x816 (1.0 MP), {f.hints} hints, "
          f"median of {f.repeats}", flush=True)
    round_trip = median_ms(lambda: post("/api/colorize", body, "application/json"), f.repeats)
    print(f"app round trip (HTTP, prepared photo, JPEG preview): {round_trip:7.1f} ms", flush=True)

    rgb = np.asarray(photo)
    as_tuples = [(h["y"], h["x"], h["rgb"]) for h in hints]

    def from_scratch():
        out = io.BytesIO()
        Image.fromarray(colorize(model, rgb, as_tuples)).save(out, "JPEG", quality=92)

    baseline = median_ms(from_scratch, f.repeats)
    print(f"baseline (colorize from scratch + JPEG, no HTTP): {baseline:7.1f} ms", flush=True)
    server.shutdown()
    server.server_close()
    verdict = "met" if round_trip <= GOAL_MS else "NOT met"
    print(f"round trip {round_trip:.0f} ms for 1 MP (goal <= {GOAL_MS:.0f} ms: {verdict}); "
          f"{baseline / round_trip:.2f}x faster than colorizing from scratch")


if __name__ == "__main__":
    app.run(main)
