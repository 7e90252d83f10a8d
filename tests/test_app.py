"""The browser tool's server: API, limits, errors, concurrent sessions; the ab
gamut and ColTran's suggestions."""

import io
import json
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from coltran_tf.app.api import App
from coltran_tf.app.server import AppServer
from coltran_tf.app.suggest import Suggestions, likely_colors, load_suggester, starting_hints
from coltran_tf.checkpoints.loading import StageError
from coltran_tf.icolorit.color import ab_gamut, fit_chroma, in_gamut, rgb_to_lab
from coltran_tf.icolorit.model import build_icolorit
from coltran_tf.utils import image_ops
from conftest import STAGES, write_tiny_models

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def url():
    server = AppServer(App(build_icolorit("micro"), "micro", max_upload_bytes=2 * 2**20,
                           max_pixels=2_000_000)).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def coltran_url(tmp_path_factory):
    """A server with ColTran suggestions from tiny stages (as --coltran_dir loads them)."""
    suggester = load_suggester(write_tiny_models(tmp_path_factory.mktemp("coltran"), STAGES[:2]))
    server = AppServer(App(build_icolorit("micro"), "micro", coltran=suggester)).start()
    yield server.url
    server.stop()


def _post(url, path, body: bytes, content_type: str):
    request = urllib.request.Request(url + path, data=body, method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def _png(name="chelsea.png") -> bytes:
    with open(os.path.join(REPO, "data", name), "rb") as f:
        return f.read()


def _session(url, name="chelsea.png"):
    status, _, body = _post(url, "/api/session", _png(name), "image/png")
    assert status == 200, body
    return json.loads(body)


def _colorize(url, session, hints, kind="jpeg"):
    return _post(url, "/api/colorize", json.dumps({"session": session, "hints": hints,
                                                   "format": kind}).encode(), "application/json")


def test_page_and_info(url):
    with urllib.request.urlopen(url + "/") as response:
        assert b"<canvas" in response.read()
    with urllib.request.urlopen(url + "/api/info") as response:
        assert json.loads(response.read())["limits"]["max_pixels"] == 2_000_000


def test_open_colorize_and_download_at_full_resolution(url):
    info = _session(url)
    source = Image.open(io.BytesIO(_png()))
    assert (info["width"], info["height"]) == source.size
    status, kind, preview = _colorize(url, info["session"], [])
    assert status == 200 and kind == "image/jpeg"
    assert Image.open(io.BytesIO(preview)).size == source.size
    hints = [{"y": 100, "x": 100, "rgb": [200, 30, 30]}, {"y": 200, "x": 300, "ab": [10, -40]}]
    status, kind, full = _colorize(url, info["session"], hints, "png")
    assert status == 200 and kind == "image/png"
    assert Image.open(io.BytesIO(full)).size == source.size


@pytest.mark.parametrize("body, content_type, status, message", [
    (b"hello", "text/plain", 415, "Not an image"),
    (b"not an image at all", "image/png", 415, "Not an image"),
    (3 * 2**20, "image/png", 413, "larger than"),
], ids=["not-an-image-type", "undecodable", "too-large"])
def test_bad_uploads_get_json_errors(url, body, content_type, status, message):
    body = b"\0" * body if isinstance(body, int) else body
    code, kind, reply = _post(url, "/api/session", body, content_type)
    assert code == status and kind == "application/json"
    assert message in json.loads(reply)["error"]


def test_too_many_pixels_and_bad_requests(url):
    big = io.BytesIO()
    Image.new("L", (2000, 1500)).save(big, "PNG")
    code, _, reply = _post(url, "/api/session", big.getvalue(), "image/png")
    assert code == 413 and "megapixels" in json.loads(reply)["error"]
    session = _session(url)["session"]
    for body, message in [(b"{", "not valid JSON"),
                          (json.dumps({"session": "nope"}).encode(), "Unknown or expired"),
                          (json.dumps({"session": session, "hints": [{"y": 1}]}).encode(),
                           "Hint 0: x must be a number"),
                          (json.dumps({"session": session,
                                       "hints": [{"y": 10**6, "x": 1, "rgb": [1, 2, 3]}]}
                                      ).encode(), "Hint 0: y must be a number from 0 to 299")]:
        code, kind, reply = _post(url, "/api/colorize", body, "application/json")
        assert code in (400, 404) and message in json.loads(reply)["error"], reply


def test_concurrent_sessions_do_not_mix(url):
    sessions = [_session(url, name)["session"] for name in ("chelsea.png", "coffee.png")]
    hints = [[{"y": 50, "x": 50, "rgb": [255, 0, 0]}], [{"y": 80, "x": 120, "rgb": [0, 0, 255]}]]
    alone = [_colorize(url, s, h, "png")[2] for s, h in zip(sessions, hints)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: _colorize(url, sessions[i % 2], hints[i % 2], "png"),
                                range(16)))
    for i, (status, _, body) in enumerate(results):
        assert status == 200
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body))),
                                      np.asarray(Image.open(io.BytesIO(alone[i % 2]))))


def _json_post(url, path, payload):
    status, _, body = _post(url, path, json.dumps(payload).encode(), "application/json")
    return status, json.loads(body)


def _data_image(data_url: str) -> Image.Image:
    return Image.open(io.BytesIO(__import__("base64").b64decode(data_url.split(",", 1)[1])))


def test_gamut_at_the_pixels_lightness(url):
    session = _session(url)["session"]
    pixel = np.asarray(Image.open(io.BytesIO(_png())).convert("RGB"))[120, 200]
    status, answer = _json_post(url, "/api/gamut", {"session": session, "y": 120, "x": 200})
    assert status == 200
    lightness = float(rgb_to_lab(pixel / 255.0)[0])
    assert abs(answer["lightness"] - lightness) < 0.01
    gamut = np.asarray(_data_image(answer["image"]))
    np.testing.assert_array_equal(gamut, ab_gamut(answer["lightness"]))
    centre = gamut[64, 64]  # a = b = 0: the grey of that lightness, always inside
    assert centre[3] == 255 and max(centre[:3]) - min(centre[:3]) <= 1
    assert abs(float(rgb_to_lab(centre[:3] / 255.0)[0]) - lightness) < 0.5
    assert (gamut[..., 3] == 0).any() and gamut[0, 0, 3] == 0  # a=-110, b=110: outside
    status, answer = _json_post(url, "/api/gamut", {"session": session, "y": 120, "x": 10**5})
    assert status == 400 and "inside the 451x300 photo" in answer["error"]


def test_ab_gamut_marks_exactly_the_colours_that_need_no_clipping():
    gamut = ab_gamut(60.0, size=33)
    inside = gamut[..., 3] == 255
    # Re-converting the shown colours lands on the grid's ab where marked inside.
    axis = np.linspace(-110, 110, 33)
    lab = np.asarray(rgb_to_lab(gamut[..., :3] / 255.0))
    a_error = np.abs(lab[..., 1] - axis[None, :])
    assert a_error[inside].max() < 1.5
    assert a_error[~inside].max() > 5
    assert 0.1 < inside.mean() < 0.6


def test_fit_chroma_keeps_hue_and_lightness_inside_srgb():
    lightness = np.array([[45.0], [45.0], [90.0], [20.0]], np.float32)
    ab = np.array([[80.0, 67.0], [5.0, -3.0], [-80.0, 80.0], [0.0, -90.0]], np.float32)
    fitted = fit_chroma(lightness, ab)
    lab = np.concatenate([lightness, fitted], axis=-1)
    assert in_gamut(lab).all() and not in_gamut(np.concatenate([lightness, ab], -1))[0]
    np.testing.assert_array_equal(fitted[1], ab[1])  # already inside: unchanged
    scale = np.hypot(*fitted.T) / np.hypot(*ab.T)
    np.testing.assert_allclose(fitted, ab * scale[:, None], atol=1e-4)  # same hue
    assert (scale[[0, 2, 3]] < 1).all() and (scale > 0.2).all()


def test_suggestions_need_coltran(url):
    session = _session(url)["session"]
    status, answer = _json_post(url, "/api/suggest", {"session": session})
    assert status == 400 and "--coltran_dir" in answer["error"]
    with urllib.request.urlopen(url + "/api/info") as response:
        assert json.loads(response.read())["coltran"] is None


def test_coltran_dir_errors_name_the_fix(tmp_path):
    with pytest.raises(StageError, match="not a directory"):
        load_suggester(str(tmp_path / "missing"))
    with pytest.raises(StageError, match="no colorizer/"):
        load_suggester(str(tmp_path))


def test_suggestions_and_likely_colours(coltran_url):
    info = _session(coltran_url)
    session, width, height = info["session"], info["width"], info["height"]
    status, first = _json_post(coltran_url, "/api/suggest",
                               {"session": session, "count": 2, "seed": 5})
    assert status == 200 and len(first["suggestions"]) == 2
    for suggestion in first["suggestions"]:
        image = _data_image(suggestion["image"])
        assert abs(image.size[0] / image.size[1] - width / height) < 0.02
        hints = suggestion["hints"]
        assert 18 <= len(hints) <= 30
        assert all(0 <= h["y"] < height and 0 <= h["x"] < width and len(h["rgb"]) == 3
                   for h in hints)
    # Sample k is drawn with seed + k: the same image whatever the request.
    status, second = _json_post(coltran_url, "/api/suggest",
                                {"session": session, "count": 1, "seed": 6})
    assert second["suggestions"][0] == first["suggestions"][1]
    assert first["suggestions"][0]["hints"] != first["suggestions"][1]["hints"]

    status, likely = _json_post(coltran_url, "/api/likely",
                                {"session": session, "y": 100, "x": 150, "count": 5})
    assert status == 200 and 1 <= len(likely["colors"]) <= 5
    probabilities = [c["probability"] for c in likely["colors"]]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1
    status, default = _json_post(coltran_url, "/api/likely", {"session": session, "y": 100,
                                                               "x": 150})  # count: 6
    assert status == 200 and default["colors"][:len(likely["colors"])] == likely["colors"]
    sizes = {}
    for count in (1, 16):
        status, answer = _json_post(coltran_url, "/api/likely",
                                    {"session": session, "y": 100, "x": 150, "count": count})
        assert status == 200 and 1 <= len(answer["colors"]) <= count
        sizes[count] = len(answer["colors"])
    assert sizes[1] == 1 and len(default["colors"]) == min(6, sizes[16])
    for count in (0, 17, "3", True, 2.0):
        status, answer = _json_post(coltran_url, "/api/likely",
                                    {"session": session, "y": 100, "x": 150, "count": count})
        assert status == 400 and answer["error"] == (
            f"count must be an integer from 1 to 16, got {count!r}."), (count, answer)
    for payload, message in [({"count": 0}, "count must be"), ({"seed": -1}, "seed must be"),
                             ({"count": "3"}, "count must be")]:
        status, answer = _json_post(coltran_url, "/api/suggest", {"session": session, **payload})
        assert status == 400 and message in answer["error"]
    with urllib.request.urlopen(coltran_url + "/api/info") as response:
        assert json.loads(response.read())["coltran"]


def _suggestions(colors, certainty, top_symbols, top_probs):
    return Suggestions(colors=np.asarray(colors, np.uint8), certainty=np.asarray(certainty),
                       top_symbols=np.asarray(top_symbols), top_probs=np.asarray(top_probs),
                       seed=0)


def test_likely_colours_take_the_pixels_lightness_and_merge_duplicates():
    low = 4
    red, blue = (int(image_ops.rgb_to_coarse_symbols(np.array(c, np.uint8)))
                 for c in ([240, 16, 16], [16, 16, 240]))
    symbols = np.zeros((low, low, 4), np.int64)
    symbols[2, 1] = [red, blue, red, 0]  # a duplicate symbol merges with the first
    probs = np.zeros((low, low, 4), np.float32)
    probs[2, 1] = [0.5, 0.3, 0.1, 0.05]
    lightness = np.full((40, 40, 1), 45.0, np.float32)
    colors = likely_colors(_suggestions(np.zeros((1, low, low, 3)), np.zeros((1, low, low)),
                                        symbols, probs), y=25, x=12, lightness=lightness)
    assert [c["probability"] for c in colors] == [0.6, 0.3, 0.05]
    first = np.asarray(rgb_to_lab(np.asarray(colors[0]["rgb"]) / 255.0))
    target = np.asarray(rgb_to_lab(np.array([240, 16, 16]) / 255.0))
    assert abs(first[0] - 45.0) < 1.0  # the pixel's lightness, not the coarse colour's
    hue = np.degrees(np.arctan2(first[2], first[1]) - np.arctan2(target[2], target[1]))
    assert abs(hue) < 5
    assert colors[1]["rgb"][2] > colors[1]["rgb"][0]  # blue


def test_likely_colours_come_from_the_shown_suggestions_else_the_pages_first_three():
    """In process, with a suggester that records its calls: /api/likely reads the
    suggestions the page shows (the last /api/suggest); before any, it draws
    what the page's first request draws (3, seed 0), once."""
    low, calls = 4, []
    red, blue = (int(image_ops.rgb_to_coarse_symbols(np.array(c, np.uint8)))
                 for c in ([240, 16, 16], [16, 16, 240]))

    class Recorder:
        input_side = 16

        def sample(self, square, count, seed):
            calls.append((square.shape, count, seed))
            symbols = np.full((low, low, 1), red if seed == 0 else blue, np.int64)
            return Suggestions(colors=np.zeros((count, low, low, 3), np.uint8),
                               certainty=np.zeros((count, low, low)), top_symbols=symbols,
                               top_probs=np.ones((low, low, 1), np.float32), seed=seed)

    app = App(build_icolorit("micro"), "micro", coltran=Recorder())
    session = app.open_image(_png("chelsea.png"))["session"]
    first = app.likely({"session": session, "y": 10, "x": 10})["colors"]
    assert calls == [((16, 16, 3), 3, 0)] and first[0]["rgb"][0] > first[0]["rgb"][2]  # red
    assert app.likely({"session": session, "y": 10, "x": 10})["colors"] == first
    assert len(calls) == 1  # drawn once, kept with the photo
    app.suggest({"session": session, "count": 2, "seed": 5})
    shown = app.likely({"session": session, "y": 10, "x": 10})["colors"]
    assert calls[1:] == [((16, 16, 3), 2, 5)] and shown[0]["rgb"][2] > shown[0]["rgb"][0]


class _FlatSuggester:
    """A stand-in ColTran suggester: grey suggestions, instantly."""
    input_side = 16

    def sample(self, square, count, seed):
        low = 4
        return Suggestions(colors=np.full((count, low, low, 3), 128, np.uint8),
                           certainty=np.zeros((count, low, low)),
                           top_symbols=np.zeros((low, low, 1), np.int64),
                           top_probs=np.ones((low, low, 1), np.float32), seed=seed)


def test_suggestion_counts_memory_refusals_and_accounting_in_process(monkeypatch):
    from http import HTTPStatus

    from coltran_tf.app import api

    app = App(build_icolorit("micro"), "micro", coltran=_FlatSuggester(),
              max_memory_bytes=64 * 2**20)
    session = app.open_image(_png("chelsea.png"))["session"]
    # Counts from 1 to MAX_SUGGESTIONS; each new draw refits the memory budget once.
    fits = []
    real_fit = app.sessions.fit
    monkeypatch.setattr(app.sessions, "fit", lambda *a, **k: fits.append(1) or real_fit(*a, **k))
    for count in (1, api.MAX_SUGGESTIONS):
        assert len(app.suggest({"session": session, "count": count})["suggestions"]) == count
    assert len(fits) == 2
    app.suggest({"session": session, "count": api.MAX_SUGGESTIONS})  # the same: kept
    assert len(fits) == 2
    for count in (0, api.MAX_SUGGESTIONS + 1):
        with pytest.raises(api.ApiError) as error:
            app.suggest({"session": session, "count": count})
        assert error.value.message == (f"count must be an integer from 1 to "
                                       f"{api.MAX_SUGGESTIONS}, got {count}.")
    # A photo whose decode alone exceeds the budget: refused, naming both sizes.
    huge = io.BytesIO()
    Image.new("L", (4000, 3000)).save(huge, "PNG")
    needed = max(api.Photo.bytes_for(4000, 3000, 16, True), api.decode_bytes_for(4000, 3000))
    with pytest.raises(api.ApiError) as error:
        app.open_image(huge.getvalue())
    assert error.value.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert error.value.message == (
        f"A 4000x3000 photo needs {needed / 2**20:.0f} MB to open, more than the server's "
        "memory budget of 64 MB (--max_memory_mb).")
    # Room for it, but not now: other uploads hold the budget.
    monkeypatch.setattr(app.sessions, "reserve", lambda nbytes: False)
    with pytest.raises(api.ApiError) as error:
        app.open_image(_png("chelsea.png"))
    assert error.value.status == HTTPStatus.SERVICE_UNAVAILABLE
    assert error.value.message == ("Other uploads are using the server's memory budget; try "
                                   "again in a moment.")
    # Without ColTran, suggestions name the flag that gives them.
    plain = App(build_icolorit("micro"), "micro")
    with pytest.raises(api.ApiError) as error:
        plain.suggest({"session": plain.open_image(_png("chelsea.png"))["session"]})
    assert error.value.message == ("This server has no ColTran model; start it with "
                                   "--coltran_dir=DIR (colorizer/ and color_upsampler/) for "
                                   "suggestions.")


def test_starting_hints_take_each_cells_most_certain_pixel():
    low = 8
    rng = np.random.default_rng(0)
    colors = rng.integers(0, 256, (1, low, low, 3))
    certainty = np.full((1, low, low), 0.1)
    certainty[0, 1, 6] = 0.9  # the top-right cell's most certain pixel
    lightness = np.full((80, 80, 1), 60.0, np.float32)
    suggestions = _suggestions(colors, certainty, np.zeros((low, low, 1)), np.zeros((low, low, 1)))
    hints = starting_hints(suggestions, 0, lightness, count=4)
    assert len(hints) == 4
    top_right = [h for h in hints if h["y"] < 40 and h["x"] >= 40]
    assert len(top_right) == 1 and (top_right[0]["y"], top_right[0]["x"]) == (15, 65)
    got = np.asarray(rgb_to_lab(np.asarray(top_right[0]["rgb"]) / 255.0))
    want = np.asarray(rgb_to_lab(colors[0, 1, 6] / 255.0))
    assert abs(got[0] - 60.0) < 1.0
    if np.hypot(*want[1:]) > 10:  # a clear hue: the hint keeps it
        hue = np.degrees(np.arctan2(got[2], got[1]) - np.arctan2(want[2], want[1]))
        assert abs((hue + 180) % 360 - 180) < 8


def test_benchmark_app_measures_latency_hints_and_memory():
    """tools/benchmark_app.py's three measurements, in-process on a micro model."""
    import benchmark_app  # tools/ (conftest puts it on the path)
    lines, model = [], build_icolorit("micro")
    round_trip, baseline = benchmark_app.latency(model, "micro", 3, 1, lines.append)
    assert round_trip > 0 and baseline > 0 and "round trip" in lines[-2]
    together, one_by_one = benchmark_app.hint_conversion(64, lines.append)
    assert 0 < together and 0 < one_by_one and lines[-1].startswith("64 rgb hints")
    held = benchmark_app.memory(model, 4, 1.0, 24, lines.append)
    # 4.5 MB a photo; each decode first reserves its upload and its 14 MB peak.
    assert held["photos"] == 3 and held["bytes"] <= 24 * 2**20
    assert lines[-1].startswith("memory: 4 uploads")
