"""The browser tool's server: API, limits, errors, concurrent sessions."""

import io
import json
import os
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from coltran_tf.app.server import App, make_server
from coltran_tf.icolorit.model import build_icolorit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def url():
    app = App(build_icolorit("micro"), "micro", max_upload_bytes=2 * 2**20,
              max_pixels=2_000_000)
    server = make_server(app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


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
    (b"hello", "text/plain", 415, "image file"),
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
                           "Hint 0 needs"),
                          (json.dumps({"session": session,
                                       "hints": [{"y": 10**6, "x": 1, "rgb": [1, 2, 3]}]}
                                      ).encode(), "outside")]:
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
