"""Colorize photos in the browser by clicking colour hints (iColoriT).

  coltran-app                       # the bundled demo weights
  coltran-app --icolorit_weights=icolorit_tiny.npz --coltran_dir=released

(`python -m coltran_tf.commands.app` is the same command.)

Serves one page on 127.0.0.1 and a free port (printed; --host/--port to
change; on any other address anyone who reaches the port can use the tool, so
the server then requires a token, shown in the printed URL): open an image
(file picker or drag and drop), click to place a hint
with the current colour, drag to move it, right-click to delete it;
undo/redo, clear, before/after, download the full-resolution PNG, save and
load the hints as JSON; the ab gamut at a hint's lightness to pick from.
--icolorit_weights: an official state_dict (.npz, or .pth with PyTorch), a URL
of one (fetched and converted once into the cache), or a model directory of
our training.

With --coltran_dir (`released`: the authors' checkpoints, fetched once into
the cache; or a directory holding colorizer/ and, optionally,
color_upsampler/: released ColTran checkpoints, our training logdirs or model
directories, as `colorize --checkpoints` takes them) the page also offers
ColTran's suggestions: a few automatic colourings as starting points, and
the colorizer's most likely colours at a hint's pixel. Without
--icolorit_weights the bundled demo iColoriT-T is used, and then also the
demo ColTran stages unless --coltran_dir is given (--nocoltran: none).
"""

import sys

from absl import app, flags

from coltran_tf.utils import cli, precision

flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (127.0.0.1: this machine only).")
flags.DEFINE_integer("port", 0, "Port (0: a free one, printed).")
flags.DEFINE_string("icolorit_weights", None, "iColoriT weights (.npz/.pth, a URL of one, "
                    "our model dir, or demo: the bundled demo iColoriT-T, the default).")
flags.DEFINE_string("coltran_dir", None, "ColTran stages for suggestions: 'demo', 'released' (or a "
                    "zip URL), or a directory with colorizer/ and optionally "
                    "color_upsampler/ (default with the demo iColoriT: the demo stages).")
flags.DEFINE_enum("precision", "float32", list(precision.CHOICES), "iColoriT and the ColTran "
                  "suggestions: " + precision.HELP)
flags.DEFINE_bool("coltran", True, "Offer ColTran's suggestions (--nocoltran: none).")
flags.DEFINE_integer("max_upload_mb", 25, "Largest accepted request body (an upload).")
flags.DEFINE_integer("max_megapixels", 40, "Largest accepted image.")
flags.DEFINE_integer("max_memory_mb", 2048, "Memory for uploaded photos (4 bytes per pixel "
                     "and small extras each); least recently used photos are dropped to "
                     "stay within it, and a photo larger than all of it is refused.")
flags.DEFINE_integer("max_connections", 64, "Concurrent connections; more get 503.")
flags.DEFINE_float("idle_timeout", 30.0, "Seconds a client has to send a request head (from "
                   "connecting or from the last reply), and on top of its size at --min_rate_kb "
                   "to send a body or read a reply; trickled bytes do not extend it.")
flags.DEFINE_integer("min_rate_kb", 64, "Slowest a client may send a body or read a reply "
                     "(KB/s), after --idle_timeout.")
flags.DEFINE_string("token", None, "A secret every API request must carry (the page takes it "
                    "from the printed URL). Default: none on 127.0.0.1/localhost, a random one "
                    "for any other --host.")
flags.DEFINE_list("allowed_hosts", [], "Names besides 127.0.0.1, localhost, [::1] and --host "
                  "that the Host header may use (e.g. this machine's LAN name).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from coltran_tf.app.api import App
    from coltran_tf.app.server import AppServer, token_for
    from coltran_tf.app.suggest import load_suggester
    from coltran_tf.checkpoints.loading import StageError
    from coltran_tf.checkpoints.released import fetch_released, is_remote
    from coltran_tf.demo import DemoWeightsMissing, coltran_dir, icolorit_dir
    from coltran_tf.icolorit.convert import WeightsError, load_icolorit
    from coltran_tf.utils.download import FetchError

    f = flags.FLAGS
    for name in ("idle_timeout", "min_rate_kb", "max_connections", "max_upload_mb",
                 "max_megapixels", "max_memory_mb"):
        if not getattr(f, name) > 0:
            raise app.UsageError(f"--{name} must be positive, got {getattr(f, name)}.")
    try:
        weights, suggestions = f.icolorit_weights, f.coltran_dir
        name, coltran_name = weights, suggestions
        if not weights or weights == "demo":
            weights, name = icolorit_dir(), "demo"
            suggestions = suggestions or ("demo" if f.coltran else None)
            coltran_name = suggestions
            print("Using the bundled demo weights (trained briefly on data/; see README).")
        if suggestions == "demo":
            suggestions = coltran_dir()
        model = load_icolorit(weights, precision=f.precision)
        if f.coltran and is_remote(suggestions):
            suggestions = fetch_released(suggestions)
        coltran = (load_suggester(suggestions, f.precision, coltran_name)
                   if suggestions and f.coltran else None)
    except (WeightsError, StageError, DemoWeightsMissing, FetchError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    app_ = App(model, name, f.max_upload_mb * 2**20, f.max_megapixels * 1_000_000,
               f.max_memory_mb * 2**20, coltran=coltran)
    token = token_for(f.host, f.token)
    try:
        server = AppServer(app_, f.host, f.port, extra_hosts=f.allowed_hosts,
                           idle_timeout=f.idle_timeout, max_connections=f.max_connections,
                           token=token, min_rate=f.min_rate_kb * 1024)
    except OSError as error:
        print(f"Error: cannot listen on {f.host}:{f.port} ({error}).", file=sys.stderr)
        return 2
    print(f"Serving on {server.page_url}  (Ctrl+C to stop)", flush=True)
    server.serve_forever()
    return 0


run = cli.entry_point(main, __name__, "coltran-app")


if __name__ == "__main__":
    run()
