"""The browser tool's server under hostile requests, on 127.0.0.1 only.

Raw sockets where an HTTP client library would hide the problem (lengths,
chunked bodies, stalls, Host and Origin headers, idle connections). Each test
names the problem it guards against.
"""

import io
import json
import os
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image
from raw_http import _api, _json, _png, _read_all, _request, _session, _status

from coltran_tf.app import api
from coltran_tf.app.api import App, Photo, parse_hints
from coltran_tf.app.images import decode_bytes_for
from coltran_tf.app.server import AppServer
from coltran_tf.icolorit.inference import hints_ab
from coltran_tf.icolorit.model import build_icolorit
from conftest import REPO_ROOT

LIMIT = 1 << 20  # the upload limit of these servers
IDLE = 1.5       # their idle timeout, seconds


@pytest.fixture(scope="module")
def model():
    return build_icolorit("micro")


@pytest.fixture(scope="module")
def server(model):
    running = AppServer(App(model, "micro", max_upload_bytes=LIMIT),
                        idle_timeout=IDLE, max_connections=6).start()
    yield running
    running.stop()


# 1. Bodies are capped whatever the headers say ------------------------------------

def test_negative_non_numeric_and_huge_lengths_are_refused(server):
    for length in ("-1", "abc"):
        reply = _request(server, "/api/session", b"x" * 60_000, {"Content-Length": length})
        assert _status(reply) == 400, reply[:200]
    reply = _request(server, "/api/session", b"", {"Content-Length": str(10 * 2**30)})
    assert _status(reply) == 413 and "larger than 1 MB" in _json(reply)["error"]


def _chunked(body: bytes, piece: int = 4096) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + piece]), body[i:i + piece])
             for i in range(0, len(body), piece)]
    return b"".join(parts) + b"0\r\n\r\n"


def test_chunked_bodies_are_read_and_capped(server):
    headers = {"Content-Length": None, "Transfer-Encoding": "chunked",
               "Content-Type": "image/png"}
    ok = _request(server, "/api/session", _chunked(_png()), headers)
    assert _status(ok) == 200 and _json(ok)["width"] == 64  # not silently empty
    big = _request(server, "/api/session", _chunked(b"\0" * (LIMIT + 10_000)), headers)
    assert _status(big) == 413 and "larger than" in _json(big)["error"]


def test_a_body_larger_than_declared_limit_gets_413_not_a_reset(server):
    reply = _request(server, "/api/session", b"\0" * (LIMIT + 1), {"Content-Type": "image/png"})
    assert _status(reply) == 413 and reply.endswith(b"}")


def test_a_lying_length_is_cut_off_when_the_body_stalls(server):
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"POST /api/session HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                     "Content-Type: image/png\r\nContent-Length: 5000\r\n\r\n0123456789"
                     .encode())
        reply = _read_all(sock)
    assert _status(reply) == 408 and time.monotonic() - start < IDLE + 3


# 2. Host, Origin and content types ---------------------------------------------------

def test_foreign_host_names_are_refused(server):
    for host in ("attacker.example", f"attacker.example:{server.port}", ""):
        reply = _request(server, "/api/info", method="GET", headers={"Host": host})
        assert _status(reply) == 400, host
        assert b"model" not in reply  # nothing about the server leaks
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", f"[::1]:{server.port}"):
        reply = _request(server, "/api/info", method="GET", headers={"Host": host})
        assert _status(reply) == 200, host


def test_requests_from_other_origins_get_403(server):
    session = _session(server)
    body = json.dumps({"session": session, "hints": []}).encode()
    for origin in ("http://attacker.example", "null", f"http://localhost:{server.port + 1}"):
        reply = _request(server, "/api/colorize", body, {"Content-Type": "application/json",
                                                         "Origin": origin})
        assert _status(reply) == 403 and "other web pages" in _json(reply)["error"]
    same = _request(server, "/api/colorize", body, {"Content-Type": "application/json",
                                                    "Origin": f"http://127.0.0.1:{server.port}"})
    assert _status(same) == 200


def test_json_endpoints_require_application_json(server):
    session = _session(server)
    for kind in ("text/plain", "application/x-www-form-urlencoded", None):
        reply = _api(server, "/api/colorize", {"session": session}, content_type=kind)
        assert _status(reply) == 415 and "application/json" in _json(reply)["error"]
    reply = _api(server, "/api/colorize", {"session": session, "hints": []},
                 content_type="Application/JSON; charset=utf-8")
    assert _status(reply) == 200


# 3. Idle connections and the connection cap ---------------------------------------------

def test_idle_and_slow_connections_are_closed(server):
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as silent, \
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow:
        slow.sendall(b"GET / HTTP/1.1\r\nHo")  # a header that never ends
        assert _read_all(silent) == b"" and _read_all(slow) == b""
    assert time.monotonic() - start < IDLE + 3
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as kept:
        kept.sendall(f"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        assert _status(_read_all(kept)) == 200  # then closed when idle (keep-alive ends)
    assert time.monotonic() - start < 2 * IDLE + 6


def test_idle_connections_give_way_to_a_new_request(server):
    """All slots held by connections that send nothing: a new request is served
    (the oldest idle one is closed to make room), not refused."""
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(8)]
    try:
        time.sleep(0.3)
        assert _status(_request(server, "/api/info", method="GET")) == 200
        idle[0].settimeout(2)
        assert _read_all(idle[0]) == b""  # the oldest was closed for it
    finally:
        for sock in idle:
            sock.close()


# 4. Memory: compact photos within a budget ---------------------------------------------------

def test_photos_are_compact_accounted_and_evicted_within_the_budget(model, monkeypatch):
    one = Photo.bytes_for(640, 480, None)
    # Three photos and one upload in flight (its decode's peak and its < 1 MB body).
    budget = 3 * one + decode_bytes_for(640, 480) + 2**20
    app = App(model, "micro", max_upload_bytes=8 * LIMIT, max_memory_bytes=budget)
    running = AppServer(app, idle_timeout=IDLE).start()
    try:
        sessions = [_session(running, _png((640, 480), seed)) for seed in range(8)]
        # Each decode first reserved its peak (evicting down to three photos), then
        # its photo was added: four remain, within the budget.
        assert len(app.sessions) == 4 and app.sessions.total_bytes <= app.sessions.budget
        assert app.sessions.reserved == 0
        assert app.memory() == {"photos": 4, "bytes": 4 * one, "budget": budget}
        photo = app.sessions.get(sessions[-1])
        lightness = photo.prepared.lightness
        assert lightness.dtype == np.float32 and lightness.shape == (480, 640, 1)
        assert lightness.base is None or lightness.base.nbytes == lightness.nbytes  # no pin
        assert photo.nbytes == one
        reply = _api(running, "/api/colorize", {"session": sessions[0], "hints": []})
        assert _status(reply) == 404 and "expired" in _json(reply)["error"]  # evicted first
        assert _status(_api(running, "/api/colorize", {"session": sessions[-1]})) == 200

        # A photo larger than the whole budget: refused from its header, never decoded.
        monkeypatch.setattr(api, "decode", lambda data: pytest.fail("decoded"))
        huge = io.BytesIO()
        Image.new("L", (4000, 3000)).save(huge, "PNG")  # 12 MP in a few KB
        reply = _request(running, "/api/session", huge.getvalue(), {"Content-Type": "image/png"})
        assert _status(reply) == 413 and "--max_memory_mb" in _json(reply)["error"]
        assert len(app.sessions) == 4
    finally:
        running.stop()


# 5. Hints: validated per field, converted together, outside the model lock -------------------

@pytest.mark.parametrize("hint, field", [
    ({"y": float("nan"), "x": 1, "rgb": [1, 2, 3]}, "y"),
    ({"y": 1, "x": float("inf"), "rgb": [1, 2, 3]}, "x"),
    ({"y": 1, "x": 1, "ab": [500, 0]}, "ab"),
    ({"y": 1, "x": 1, "ab": [float("nan"), 0]}, "ab"),
    ({"y": 1, "x": 1, "rgb": "red"}, "rgb"),
    ({"y": 1, "x": 1, "rgb": [[1, 2], [3]]}, "rgb"),
    ({"y": 1, "x": 1, "rgb": [1, 2, 300]}, "rgb"),
    ({"y": True, "x": 1, "rgb": [1, 2, 3]}, "y"),
    ({"y": "1", "x": 1, "rgb": [1, 2, 3]}, "y"),
], ids=["nan-y", "inf-x", "ab-range", "nan-ab", "rgb-string", "nested", "rgb-range", "bool",
        "string-y"])
def test_bad_hints_get_400_naming_index_and_field(server, hint, field):
    session = _session(server)
    hints = [{"y": 2, "x": 2, "rgb": [9, 9, 9]}, hint]
    reply = _api(server, "/api/colorize", json.dumps({"session": session, "hints": hints})
                 .encode())
    message = _json(reply)["error"]
    assert _status(reply) == 400 and message.startswith(f"Hint 1: {field} "), message


def test_rgb_hints_convert_together_as_one_at_a_time():
    rng = np.random.default_rng(0)
    hints = [{"y": int(rng.integers(300)), "x": int(rng.integers(400)),
              "rgb": [int(v) for v in rng.integers(0, 256, 3)]} for _ in range(4096)]
    hints[7] = {"y": 5, "x": 6, "ab": [12.5, -40.0]}
    ys, xs, ab = parse_hints(hints, 300, 400)
    one_by_one = np.concatenate([hints_ab([h.get("rgb", h.get("ab"))]) for h in hints[:64]])
    np.testing.assert_allclose(ab[:64], one_by_one, atol=1e-4)
    assert ys[7] == 5 and xs[7] == 6 and tuple(ab[7]) == (12.5, -40.0)


@pytest.mark.parametrize("hint, field", [
    ({"y": 1, "x": 1, "rgb": [1, 2]}, "rgb"),
    ({"y": 1, "x": 1, "rgb": [1, 2, 3, 4]}, "rgb"),
    ({"y": 1, "x": 1, "ab": [1]}, "ab"),
    ({"y": 1, "x": 1, "ab": [1, 2, 3]}, "ab"),
    ({"y": 1, "x": 1, "rgb": [1, True, 3]}, "rgb"),
    ({"y": 1, "x": 1, "rgb": [1, 2, -1]}, "rgb"),
    ({"y": 1, "x": 1, "rgb": [256, 2, 1]}, "rgb"),
    ({"y": 1, "x": 1, "ab": [0, -110.5]}, "ab"),
    ({"y": 1, "x": 1}, "colour"),
    ({"y": 1, "x": 1, "rgb": [1, 2, 3], "ab": [0, 0]}, "colour"),
    ({"x": 1, "rgb": [1, 2, 3]}, "y"),
    ({"y": 1, "x": 400, "rgb": [1, 2, 3]}, "x"),
    ([1, 1, [1, 2, 3]], "object"),
], ids=["rgb-2", "rgb-4", "ab-1", "ab-3", "rgb-bool", "rgb-below", "rgb-256", "ab-below",
        "no-colour",
        "two-colours", "no-y", "x-outside", "not-an-object"])
def test_malformed_hints_are_refused_naming_the_field(hint, field):
    """In process (the server test above sends a few of these over HTTP): each
    malformed hint is a 400 whose message names the hint's index and field."""
    expected = {"colour": "Hint 1 needs numbers y, x and one colour",
                "object": "Hint 1 must be an object"}.get(field, f"Hint 1: {field} must be")
    with pytest.raises(api.ApiError) as error:
        parse_hints([{"y": 0, "x": 0, "rgb": [0, 0, 0]}, hint], 300, 400)
    message = str(error.value)
    assert error.value.status == 400 and message.startswith(expected), message
    if field != "colour":  # the refused value is quoted
        quoted = hint if field == "object" else hint.get(field)
        assert message.endswith(f", got {api.excerpt(quoted)}."), message
    ys, xs, ab = parse_hints([{"y": 1, "x": 2, "rgb": [255, 0, 0]}, {"y": 3, "x": 4,
                                                                      "ab": [-110, 110]}], 5, 5)
    assert list(ys) == [1, 3] and list(xs) == [2, 4] and tuple(ab[1]) == (-110, 110)


def test_error_messages_quote_a_bounded_excerpt_of_the_input():
    assert api.excerpt("red") == "'red'" and api.excerpt([1, 2]) == "[1, 2]"
    exact = "x" * (api.MAX_EXCERPT - 2)  # its repr is MAX_EXCERPT characters
    assert api.excerpt(exact) == repr(exact)
    longer = exact + "y"
    assert api.excerpt(longer) == repr(longer)[:api.MAX_EXCERPT] + "..."


def test_pixel_requests_take_pixels_of_the_photo_only(model):
    """/api/gamut and /api/likely: y in 0..height-1, x in 0..width-1, integers;
    anything else a 400 quoting both."""
    app = App(model, "micro")
    photo = io.BytesIO()
    Image.new("RGB", (40, 30), (90, 120, 30)).save(photo, "PNG")
    session = app.open_image(photo.getvalue())["session"]
    for y, x in ((0, 0), (29, 39), (0, 39), (29, 0)):
        assert app.gamut({"session": session, "y": y, "x": x})["ab_max"] == 110
    for y, x in ((30, 0), (0, 40), (-1, 0), (0, -1), (1.0, 2), (1, True)):
        with pytest.raises(api.ApiError) as error:
            app.gamut({"session": session, "y": y, "x": x})
        assert error.value.status == 400 and str(error.value) == (
            "y and x must be integer pixel coordinates inside the 40x30 photo, got "
            f"{y!r}, {x!r}.")


def test_request_bodies_parse_to_a_json_object_or_a_named_400():
    assert api.parse_json(b"") == {} and api.parse_json(b'{"a": [1, 2.5]}') == {"a": [1, 2.5]}
    for body, message in ((b"\xff{}", "The request is not UTF-8 text."),
                          (b"[1]", "The request must be a JSON object."),
                          (b"[" * 100_000, "The request is nested too deeply."),
                          (b"{", "The request is not valid JSON (Expecting property name "
                                 "enclosed in double quotes)."),
                          (b'{"a": ' + b"9" * 5000 + b"}", "The request is not valid JSON "
                           "(Exceeds the limit (4300 digits) for integer string conversion).")):
        with pytest.raises(api.ApiError) as error:
            api.parse_json(body)
        assert error.value.status == 400 and str(error.value) == message, body[:20]


def test_an_unknown_session_is_a_404_that_says_what_to_do(model):
    app = App(model, "micro")
    for key in ("nope", None, 7):
        with pytest.raises(api.ApiError) as error:
            app.sessions.get(key)
        assert error.value.status == 404 and str(error.value) == (
            "Unknown or expired session; open the image again.")


def test_sessions_keep_the_newest_photo_and_evict_the_least_recently_used(monkeypatch):
    """Sessions on their own, photos as byte counts: the budget filled exactly
    keeps every photo; the least recently used goes first; the photo being
    added is kept even when it alone (or with the reservations) exceeds it;
    freed memory is handed back after each eviction."""
    from types import SimpleNamespace as Fake

    trims = []
    monkeypatch.setattr(api, "_release_freed_memory", lambda: trims.append(1))
    sessions = api.Sessions(100)
    assert sessions.reserve(100) and not sessions.reserve(1)  # exactly the budget
    sessions.release(100)
    assert sessions.reserve(80) and not sessions.reserve(30) and sessions.reserved == 80
    sessions.release(80)
    assert not trims
    first, second = sessions.add(Fake(nbytes=50)), sessions.add(Fake(nbytes=50))
    assert len(first) == len(second) == 16 and first != second  # 96 random bits each
    assert len(sessions) == 2 and sessions.total_bytes == 100  # exactly the budget
    assert not trims
    sessions.get(first)  # now the most recently used
    third = sessions.add(Fake(nbytes=50))
    assert sorted([first, third]) == sorted(sessions._items) and len(sessions) == 2
    assert len(trims) == 1  # second evicted
    big = sessions.add(Fake(nbytes=150))  # larger than the budget: kept, alone
    assert list(sessions._items) == [big]
    small = sessions.add(Fake(nbytes=10))
    assert list(sessions._items) == [small] and sessions.reserve(80)
    newest = sessions.add(Fake(nbytes=30))  # 10 + 30 + 80 reserved > 100: keep the newest
    assert list(sessions._items) == [newest]
    sessions.release(80)
    assert sessions.reserved == 0 and not sessions.reserve(101) and sessions.reserved == 0


@pytest.mark.parametrize("side, browser", [(None, True), (64, True), (None, False), (64, False)])
def test_a_photos_bytes_are_known_before_it_is_decoded(side, browser):
    """Photo.bytes_for (from the header's size) is what the photo holds, plus
    only the stated margins: the thumbnail counted at its largest, the JPEG of
    an original the browser cannot show at 3 bytes per pixel."""
    rng = np.random.default_rng(3)
    photo = Photo(Image.fromarray(rng.integers(0, 256, (300, 400, 3), np.uint8)), side, browser)
    margin = 0
    if side:
        assert photo.square.shape == (side, side, 3) and photo.thumbnail.shape == (240, 320, 3)
        margin += api.THUMBNAIL_BYTES - photo.thumbnail.nbytes
    else:
        assert photo.square is None and photo.thumbnail is None
    if browser:
        assert photo.original is None
    else:
        assert Image.open(io.BytesIO(photo.original)).format == "JPEG"
        margin += 3 * 400 * 300 - len(photo.original)
    assert Photo.bytes_for(400, 300, side, browser) == photo.nbytes + margin and margin >= 0


def test_model_names_are_shown_without_their_folders():
    assert api._display_name("/somewhere/private/weights.npz") == "weights.npz"
    assert api._display_name("runs/icolorit/") == "icolorit"
    assert api._display_name("micro") == "micro" and api._display_name("") == ""


def test_hint_coordinates_are_pixels_of_the_photo_and_the_count_is_capped():
    """y in 0..height-1 and x in 0..width-1, the last row and column included; a
    hint at y == height or x == width is outside (400 naming the field); 4,096
    hints pass and 4,097 do not."""
    from coltran_tf.app.api import MAX_HINTS, ApiError

    ys, xs, _ = parse_hints([{"y": 299, "x": 399, "rgb": [1, 2, 3]},
                             {"y": 0, "x": 0, "ab": [0, 0]},
                             {"y": 299.5, "x": 398.75, "rgb": [1, 2, 3]}], 300, 400)
    assert list(ys) == [299, 0, 299.5] and list(xs) == [399, 0, 398.75]
    ys, xs, _ = parse_hints([{"y": 299, "x": 399, "rgb": [1, 2, 3]}], 300, 400)
    assert ys.dtype == xs.dtype == np.float64  # pixel positions, not indices
    for hint, field in (({"y": 300, "x": 0}, "y"), ({"y": 0, "x": 400}, "x"),
                        ({"y": -0.5, "x": 0}, "y"), ({"y": 0, "x": -1}, "x")):
        with pytest.raises(ApiError, match=f"^Hint 0: {field} must be a number from 0 to "
                                           f"{299 if field == 'y' else 399}") as error:
            parse_hints([{**hint, "rgb": [1, 2, 3]}], 300, 400)
        assert error.value.status == 400
    many = [{"y": 1, "x": 1, "rgb": [1, 2, 3]}] * MAX_HINTS
    assert MAX_HINTS == 4096 and len(parse_hints(many, 300, 400)[0]) == MAX_HINTS
    with pytest.raises(ApiError, match="at most 4096 hints") as error:
        parse_hints(many + many[:1], 300, 400)
    assert error.value.status == 400


def test_hints_are_checked_outside_the_model_lock(server):
    session = _session(server)
    with server.app.model_lock:  # a long forward pass elsewhere
        start = time.monotonic()
        reply = _api(server, "/api/colorize", {"session": session,
                                               "hints": [{"y": -1, "x": 0, "rgb": [1, 2, 3]}]})
        assert _status(reply) == 400 and time.monotonic() - start < 5


# 6. Malformed input never yields 500, errors quote short excerpts ---------------------------

@pytest.mark.parametrize("body", [
    b"\xff\xfe{not utf-8",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"session": "x", "hints": ' + b"9" * 5000 + b"}",
    b'{"session": ',
    b"[1, 2, 3]",
], ids=["invalid-utf8", "deep-nesting", "5000-digits", "truncated", "not-an-object"])
def test_malformed_json_is_a_400(server, body):
    reply = _api(server, "/api/colorize", body)
    assert _status(reply) == 400, reply[:300]
    assert len(_json(reply)["error"]) < 200


def test_errors_quote_only_an_excerpt_and_500s_echo_nothing(server, monkeypatch, capfd):
    session = _session(server)
    secret = "A" * 900  # within the 1 KB a gamut request may have
    reply = _api(server, "/api/colorize", {"session": session,
                                           "hints": [{"y": secret, "x": 1, "rgb": [1, 2, 3]}]})
    assert _status(reply) == 400 and len(_json(reply)["error"]) < 300

    def broken(request):
        raise ValueError(f"internal trouble with {request['y']}")

    monkeypatch.setattr(server.app, "gamut", broken)
    reply = _api(server, "/api/gamut", {"session": session, "y": secret})
    assert _status(reply) == 500 and secret[:100] not in reply.decode()
    assert "ValueError" in _json(reply)["error"]
    assert secret[:100] not in capfd.readouterr().err


# 7. Uploads are sniffed, not judged by their declared type -------------------------------------

def test_any_decodable_file_is_accepted_whatever_its_type(server):
    for kind in ("application/octet-stream", "IMAGE/PNG", "text/plain", None):
        assert _session(server, _png(), content_type=kind)
    tiff = io.BytesIO()
    Image.open(os.path.join(REPO_ROOT, "data", "camera.png")).save(tiff, "TIFF")
    session = _session(server, tiff.getvalue(), content_type="image/tiff")
    reply = _api(server, "/api/original", {"session": session})
    head, body = reply.split(b"\r\n\r\n", 1)
    assert _status(reply) == 200 and b"\r\ncontent-type: image/jpeg\r\n" in head + b"\r\n"
    assert Image.open(io.BytesIO(body)).format == "JPEG"
    png_session = _session(server)
    reply = _api(server, "/api/original", {"session": png_session})
    assert _status(reply) == 404  # the browser shows PNGs itself
    assert _json(reply)["error"] == "The browser shows this photo itself."


def test_many_requests_leave_the_server_answering(server):
    """A burst of bad requests from several threads, then a good one."""
    def attack(i):
        _request(server, "/api/colorize", b"{" * i, {"Content-Type": "application/json"})

    threads = [threading.Thread(target=attack, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _status(_request(server, "/api/info", method="GET")) == 200
