"""The browser tool's guards, round 2, over real sockets on 127.0.0.1: deadlines
that trickled bytes cannot reset, slots a flood cannot take, decode work and
memory bounded before decoding, JSON bodies capped and parsed off the event
loop, headers, the token, and suggestions that do not delay a colorize.

Each test names what an attacker on this machine did to the server before.
"""

import io
import json
import socket
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image
from raw_http import _api, _exchange, _json, _read_all, _request, _session, _status

from coltran_tf.app import images
from coltran_tf.app import server as server_module
from coltran_tf.app.api import ApiError, App, Photo
from coltran_tf.app.server import JSON_LIMITS, AppServer, token_for
from coltran_tf.icolorit.model import build_icolorit

IDLE = 1.5            # the servers' idle timeout, seconds
RATE = 4 * 2**20      # their minimum rate, bytes/s (a few MB of reply: well under a second)


@pytest.fixture(scope="module")
def model():
    return build_icolorit("micro")


@pytest.fixture(scope="module")
def server(model):
    running = AppServer(App(model, "/somewhere/private/weights.npz", max_upload_bytes=8 << 20),
                        idle_timeout=IDLE, max_connections=6, min_rate=RATE).start()
    yield running
    running.stop()


def _connections(server) -> int:
    return len(server.server.server_state.connections)


def _wait_until(condition, timeout: float) -> float:
    """Seconds until condition() holds; fails after `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


def _head(server, path, **headers) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}",
             *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# 1. Deadlines a trickle cannot reset; slots a flood cannot take ---------------------------

def test_a_head_trickled_a_byte_at_a_time_is_cut_at_its_deadline(server):
    """Before: the idle timer restarted on every byte; a byte every 18 s held
    the connection for ever."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        try:
            for byte in b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100:
                sock.sendall(bytes([byte]))
                time.sleep(IDLE / 5)
                if time.monotonic() - start > 3 * IDLE:
                    pytest.fail("the trickled head was not cut off")
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert time.monotonic() - start < IDLE + 1.5


def test_a_body_trickled_a_byte_at_a_time_gets_408_at_its_deadline(server):
    """Before: each byte restarted the body's timer (5,000 bytes at one per 18 s:
    a day)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_head(server, "/api/session", Content_Type="image/png",
                           Content_Length=5000))
        reply = b""
        for _ in range(40):
            try:
                sock.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                break
            sock.settimeout(IDLE / 5)
            try:
                reply += sock.recv(4096)
            except TimeoutError:
                continue
            if reply:
                break
        sock.settimeout(5)
        reply += _read_all(sock)
    assert _status(reply) == 408 and "too slowly" in _json(reply)["error"]
    assert time.monotonic() - start < IDLE + 1.5


def test_a_client_that_never_reads_its_reply_is_cut_off(server):
    """Before: a reply larger than the socket buffers stayed queued, the
    connection ESTABLISHED and holding a slot for as long as the client liked."""
    rng = np.random.default_rng(0)
    noise = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (1200, 1600, 3), np.uint8)).save(noise, "PNG")
    session = _session(server, noise.getvalue())
    body = json.dumps({"session": session, "hints": [], "format": "png"}).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    try:
        sock.sendall(_head(server, "/api/colorize", Content_Type="application/json",
                           Content_Length=len(body)) + body)
        time.sleep(0.5)
        assert _connections(server) >= 1
        # The reply (~5 MB) is cut when it has not left within IDLE + its size at RATE.
        _wait_until(lambda: _connections(server) == 0, IDLE + 6 * 2**20 / RATE + 3)
    finally:
        sock.close()


def _trickler(port: int, stop: threading.Event, body: bool) -> None:
    """Keeps one connection trickling a head (or a body), reconnecting when cut."""
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                if body:
                    sock.sendall(f"POST /api/session HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                                 "Content-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
                                 .encode())
                else:
                    sock.sendall(b"GET / HTTP/1.1\r\n")
                while not stop.is_set():
                    sock.sendall(b"x" if body else b"X-A: b\r\n")
                    stop.wait(0.2)
        except OSError:
            stop.wait(0.01)


@pytest.mark.parametrize("body", [False, True], ids=["heads", "bodies"])
def test_the_user_is_served_while_trickling_clients_take_every_slot(model, body):
    """Before: 63 clients trickling heads (or bodies) answered the real user's
    182 requests with 182 503s."""
    running = AppServer(App(model, "micro"), idle_timeout=IDLE, max_connections=6,
                        min_rate=RATE).start()
    stop = threading.Event()
    attackers = [threading.Thread(target=_trickler, args=(running.port, stop, body))
                 for _ in range(12)]
    try:
        for thread in attackers:
            thread.start()
        time.sleep(1.0)
        assert _connections(running) >= 6
        statuses = []
        for _ in range(8):
            statuses.append(_status(_request(running, "/api/info", method="GET")))
            time.sleep(0.2)
        assert statuses == [200] * 8
    finally:
        stop.set()
        for thread in attackers:
            thread.join()
        running.stop()


def _upload_heads(running, count: int, body: bytes = b"") -> list:
    """`count` connections that sent an upload's head (and `body` of its
    100,000 bytes), then stall."""
    head = (f"POST /api/session HTTP/1.1\r\nHost: 127.0.0.1:{running.port}\r\n"
            "Content-Type: image/png\r\nContent-Length: 100000\r\n\r\n").encode()
    sockets = []
    for _ in range(count):
        sockets.append(socket.create_connection(("127.0.0.1", running.port), timeout=5))
        sockets[-1].sendall(head)
    if body:
        time.sleep(0.05)  # after the head: bytes of a body the server counts
        for sock in sockets:
            sock.sendall(body)
    return sockets


def _info_status(user, running) -> int:
    user.sendall(f"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:{running.port}\r\n"
                 "Connection: close\r\n\r\n".encode())
    return _status(_read_all(user))


def test_a_request_on_its_way_keeps_the_slot_it_took(model):
    """Before: a client stalled in its body outranked a new connection whose head
    had not come yet, so the next trickler to reconnect closed the user's
    connection (status 0; the flake of the test above, bodies case)."""
    running = AppServer(App(model, "micro"), idle_timeout=5, max_connections=3,
                        min_rate=RATE).start()
    stalled = []
    try:
        stalled = _upload_heads(running, 3)  # every slot: a body behind min_rate
        time.sleep(0.3)
        user = socket.create_connection(("127.0.0.1", running.port), timeout=5)
        time.sleep(0.1)      # the user's head is on its way when the next trickler comes
        stalled += _upload_heads(running, 1)
        time.sleep(0.1)
        assert _info_status(user, running) == 200
        user.close()
    finally:
        for sock in stalled:
            sock.close()
        running.stop()


def _from(address: str, server, data: bytes, timeout: float = 10.0) -> socket.socket:
    sock = socket.socket()
    sock.bind((address, 0))
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(data)
    return sock


def test_one_address_cannot_take_every_slot_from_another(model):
    """Each address may have at most half the connections' requests in progress:
    127.0.0.2's fourth blocked request gets 503, 127.0.0.3 is still served."""
    running = AppServer(App(model, "micro"), idle_timeout=30, max_connections=6).start()
    session = _session(running)
    body = json.dumps({"session": session, "hints": []}).encode()
    request = (_head(running, "/api/colorize", Content_Type="application/json",
                     Content_Length=len(body)) + body)
    held = []
    try:
        with running.app.model_lock:  # colorizes wait: the server is working for them
            held = [_from("127.0.0.2", running, request) for _ in range(3)]
            time.sleep(0.5)
            fourth = _from("127.0.0.2", running, request)
            reply = _read_all(fourth)
            fourth.close()
            assert _status(reply) == 503 and "your address" in _json(reply)["error"]
            other = json.dumps({"session": session, "y": 1, "x": 1}).encode()
            sock = _from("127.0.0.3", running, _head(running, "/api/gamut", Connection="close",
                                                      Content_Type="application/json",
                                                      Content_Length=len(other)) + other)
            assert _status(_read_all(sock)) == 200
            sock.close()
        for sock in held:
            assert _status(sock.recv(4096)) == 200
    finally:
        for sock in held:
            sock.close()
        running.stop()


# 2. Decoding: the offered formats only, work and memory bounded first ---------------------

def _saved(image: Image.Image, kind: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def _upload(server, data: bytes) -> bytes:
    return _request(server, "/api/session", data, {"Content-Type": "image/png"})


def test_only_the_offered_formats_reach_a_decoder(server, monkeypatch):
    """Before: an EPS sent as PNG went to Pillow's EPS reader (Ghostscript when
    installed); ICO, PSD, ... opened too."""
    from PIL import EpsImagePlugin

    opened = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open",
                        lambda self: opened.append(1) or pytest.fail("EPS reached"))
    small = Image.new("RGB", (16, 16), (200, 10, 10))
    for data in (_saved(small, "EPS"), _saved(small, "ICO"), _saved(small, "TGA"),
                 b"<svg xmlns='http://www.w3.org/2000/svg'/>"):
        reply = _upload(server, data)
        assert _status(reply) == 415 and "PNG, JPEG, WebP" in _json(reply)["error"]
    assert not opened
    for kind in ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF", "PPM"):
        assert _status(_upload(server, _saved(small, kind))) == 200, kind


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                               0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_sizes_are_refused_from_the_header_with_413_naming_the_limit(server):
    """Before: a 40,000,000x1 PNG of 39 KB took 2 GB to upload and 5.3 GB and a
    500 to preview; sides over 65,500 broke every JPEG preview; over 800 MP
    was '415 not an image'."""
    reply = _upload(server, _png_header_only(65_501, 1))
    assert _status(reply) == 413 and "65500" in _json(reply)["error"]
    reply = _upload(server, _png_header_only(40_000_000, 1))
    assert _status(reply) == 413
    reply = _upload(server, _png_header_only(30_000, 30_000))
    assert _status(reply) == 413 and "megapixels" in _json(reply)["error"]
    wide = _saved(Image.new("L", (65_500, 2), 128), "PNG")  # the widest: every output works
    session = _session(server, wide)
    reply = _api(server, "/api/colorize", {"session": session, "hints": []})
    assert _status(reply) == 200 and Image.open(io.BytesIO(reply.split(b"\r\n\r\n", 1)[1])
                                                ).size == (65_500, 2)


def _progressive_jpeg_with_scans(count: int) -> bytes:
    data = _saved(Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3),
                                                                     np.uint8)),
                  "JPEG", progressive=True)
    last = data.rindex(b"\xff\xda")  # the final scan, repeated before the end marker
    scan = data[last:-2]
    return data[:-2] + scan * (count - data.count(b"\xff\xda")) + b"\xff\xd9"


def test_jpeg_scans_and_png_chunks_are_bounded_before_decoding(server):
    """Before: 10,000 repeats of a scan decoded for 23.8 s; 2,000,000 empty PNG
    chunks took 14.7 s and 500 MB, and were accepted."""
    assert _status(_upload(server, _progressive_jpeg_with_scans(20))) == 200
    reply = _upload(server, _progressive_jpeg_with_scans(images.MAX_JPEG_SCANS + 50))
    assert _status(reply) == 413 and "scans" in _json(reply)["error"]

    png = _saved(Image.new("RGB", (8, 8)), "PNG")
    empty = struct.pack(">I", 0) + b"prVt" + struct.pack(">I", zlib.crc32(b"prVt"))
    many = png[:33] + empty * (images.MAX_PNG_CHUNKS + 10) + png[33:]
    reply = _upload(server, many)
    assert _status(reply) == 413 and "chunks" in _json(reply)["error"]


def _peak_rss_since_reset() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))


def _rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))


def test_concurrent_uploads_stay_within_the_budget_plus_a_constant(model):
    """Before: four concurrent 40 MP uploads peaked at 4.3 GB against 0.64 GB
    accounted: the budget did not bound decoding."""
    budget = 160 * 2**20
    running = AppServer(App(model, "micro", max_upload_bytes=8 << 20,
                            max_memory_bytes=budget), idle_timeout=30).start()
    gradient = np.linspace(0, 255, 3000 * 2000, dtype=np.float32).reshape(2000, 3000)
    rgba = np.stack([gradient, gradient[::-1], gradient.T.reshape(2000, 3000),
                     np.full_like(gradient, 200)], -1).astype(np.uint8)
    uploads = [_saved(Image.fromarray(rgba, "RGBA"), "PNG", compress_level=1) for _ in range(4)]
    del gradient, rgba
    statuses = []
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak to the current resident memory
        before = _rss()
        threads = [threading.Thread(target=lambda d=data: statuses.append(
            _status(_upload(running, d)))) for data in uploads]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        grown = _peak_rss_since_reset() - before
    finally:
        running.stop()
    assert statuses == [200] * 4
    bodies = sum(map(len, uploads))
    assert grown <= budget + images.DECODE_EXTRA_BYTES + 2 * bodies, grown / 2**20


def test_the_photo_a_decode_keeps_is_what_is_accounted(model):
    rgb = np.random.default_rng(1).integers(0, 256, (300, 400, 3), np.uint8)
    for side, browser in ((None, True), (64, True), (64, False)):
        photo = Photo(Image.fromarray(rgb), side, browser)
        assert photo.nbytes <= Photo.bytes_for(400, 300, side, browser)
        assert Photo.bytes_for(400, 300, side, browser) <= images.decode_bytes_for(400, 300)


# 3. JSON: capped per endpoint, parsed off the loop, every number checked ------------------

def test_json_bodies_are_capped_per_endpoint_before_parsing(server):
    """Before: a 25 MB JSON body was parsed (620 MB) before it waited for a worker."""
    session = _session(server)
    padded = {"session": session, "hints": [], "pad": "x" * JSON_LIMITS["colorize"]}
    reply = _api(server, "/api/colorize", padded)
    assert _status(reply) == 413 and "KB" in _json(reply)["error"]
    reply = _request(server, "/api/suggest", b"", {"Content-Type": "application/json",
                                                   "Content-Length": str(10 * 2**20)})
    assert _status(reply) == 413
    hints = [{"y": 0.12345678901234567, "x": 0.12345678901234567, "rgb": [255, 255, 255]}] * 4096
    reply = _api(server, "/api/colorize", {"session": session, "hints": hints})
    assert _status(reply) == 200  # the largest valid request fits


def test_json_is_parsed_off_the_event_loop(server, monkeypatch):
    """Before: a 2M-key object parsed on the event loop stalled every request 3.5 s."""
    real = server_module.parse_json

    def slow(body):
        time.sleep(3)
        return real(body)

    monkeypatch.setattr(server_module, "parse_json", slow)
    session = _session(server)
    thread = threading.Thread(target=_api, args=(server, "/api/colorize", {"session": session}))
    thread.start()
    time.sleep(0.3)
    start = time.monotonic()
    assert _status(_request(server, "/api/info", method="GET")) == 200
    assert time.monotonic() - start < 1.0
    thread.join()


@pytest.mark.parametrize("payload, field", [
    ({"hints": [{"y": 10 ** 400, "x": 1, "rgb": [1, 2, 3]}]}, "Hint 0: y"),
    ({"hints": [{"y": 1, "x": -10 ** 400, "rgb": [1, 2, 3]}]}, "Hint 0: x"),
    ({"hints": [{"y": 1, "x": 1, "rgb": [10 ** 400, 2, 3]}]}, "Hint 0: rgb"),
    ({"hints": [{"y": 1, "x": 1, "ab": [1, -10 ** 400]}]}, "Hint 0: ab"),
], ids=["y", "x", "rgb", "ab"])
def test_huge_integers_are_a_400_not_a_500(server, payload, field):
    """Before: 400-digit integers raised OverflowError in math.isfinite (500)."""
    session = _session(server)
    reply = _api(server, "/api/colorize", {"session": session, **payload})
    assert _status(reply) == 400 and _json(reply)["error"].startswith(field)


def _exif_with_orientation() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate
    exif[0x010F] = "camera"
    return exif.tobytes()


def test_bad_exif_never_gives_a_500(server):
    """Before: a WebP with a non-TIFF EXIF chunk (SyntaxError) and mistyped JPEG
    EXIF entries (struct.error, TypeError) were 500s: exif_transpose ran
    outside the decode guard."""
    small = Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 32, 3), np.uint8))
    reply = _upload(server, _saved(small, "WEBP", exif=b"not a TIFF header at all"))
    assert _status(reply) == 200
    good = _exif_with_orientation()
    rotated = _json(_upload(server, _saved(small, "JPEG", exif=good)))
    assert (rotated["width"], rotated["height"]) == (24, 32)  # the orientation is applied
    rng = np.random.default_rng(0)
    statuses = set()
    for _ in range(40):
        mutated = bytearray(good)
        for position in rng.integers(6, len(mutated), 4):
            mutated[position] = int(rng.integers(0, 256))
        for kind in ("JPEG", "WEBP"):
            statuses.add(_status(_upload(server, _saved(small, kind, exif=bytes(mutated)))))
    assert statuses <= {200, 415}, statuses


# 4. Headers, exposure and the token -----------------------------------------------------------

def test_replies_carry_nosniff_and_forbid_framing(server):
    for path, method in (("/", "GET"), ("/api/info", "GET"), ("/api/nothing", "POST")):
        reply = _request(server, path, method=method).split(b"\r\n\r\n")[0].lower()
        assert b"x-content-type-options: nosniff" in reply, path
        assert b"frame-ancestors 'none'" in reply and b"x-frame-options: deny" in reply, path


def test_a_405_names_the_allowed_methods(server):
    reply = _request(server, "/api/session", method="GET")
    assert _status(reply) == 405 and b"allow: post" in reply.split(b"\r\n\r\n")[0].lower()


def test_content_length_with_transfer_encoding_is_refused_and_closed(server):
    """Before: the connection stayed open and answered a request hidden in the body."""
    hidden = f"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode()
    body = b"0\r\n\r\n" + hidden
    reply = _exchange(server, _head(server, "/api/colorize", Content_Type="application/json",
                                    Content_Length=len(body),
                                    Transfer_Encoding="chunked") + body, wait=5)
    assert _status(reply) == 400 and reply.count(b"HTTP/1.1") == 1


def test_info_names_models_without_paths(server):
    info = _json(_request(server, "/api/info", method="GET"))
    assert info["model"] == "weights.npz" and "/" not in json.dumps(info)


def test_a_token_guards_every_api_request(model):
    running = AppServer(App(model, "micro"), token="s3cret-token").start()
    try:
        assert running.page_url.endswith("/#token=s3cret-token")
        assert _status(_request(running, "/", method="GET")) == 200  # the page itself
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}):
            reply = _request(running, "/api/info", method="GET", headers=headers)
            assert _status(reply) == 401 and "token" in _json(reply)["error"]
        reply = _request(running, "/api/info", method="GET",
                         headers={"Authorization": "Bearer s3cret-token"})
        assert _status(reply) == 200
    finally:
        running.stop()


def test_a_non_loopback_host_warns_and_requires_a_token(capsys):
    assert token_for("127.0.0.1", None) is None and token_for("localhost", None) is None
    assert token_for("[::1]", "mine") == "mine"
    generated = token_for("0.0.0.0", None)
    assert generated and len(generated) >= 20
    assert "anyone who can reach the port" in capsys.readouterr().err
    assert token_for("192.168.1.5", "mine") == "mine"


# 5. Suggestions have a queue of their own ----------------------------------------------------

class _SlowColTran:
    """A ColTran stand-in whose sampling takes 1 s (real suggestions take longer)."""
    name, input_side = "slow", 16

    def sample(self, rgb, count, seed):
        time.sleep(1)
        raise ApiError(503, "busy")


def test_a_colorize_is_answered_while_suggestions_run(model):
    """Before: six suggestions in flight made a colorize wait 11.9 s (here eight
    of 1 s each would hold all four workers for 2 s; the colorize is answered in
    well under one)."""
    running = AppServer(App(model, "micro", coltran=_SlowColTran())).start()
    try:
        sessions = [_session(running) for _ in range(8)]  # more than the 4 workers
        assert _status(_api(running, "/api/colorize", {"session": sessions[0]})) == 200  # warm
        threads = [threading.Thread(target=_api, args=(running, "/api/suggest",
                                                       {"session": s, "count": 1, "seed": 0}))
                   for s in sessions]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        start = time.monotonic()
        reply = _api(running, "/api/colorize", {"session": sessions[0], "hints": []})
        assert _status(reply) == 200 and time.monotonic() - start < 0.9
        for thread in threads:
            thread.join()
    finally:
        running.stop()


def test_a_slot_freed_when_the_head_arrives_serves_that_head(model):
    """Before: when every slot kept pace as the user connected and one fell
    behind min_rate only later, the user's head closed that connection but was
    still counted against it: 503 "Exceeded concurrency limit" (uvicorn counts
    a connection until a later turn of the loop; the flake of the trickling
    test, bodies case)."""
    running = AppServer(App(model, "micro"), idle_timeout=5, max_connections=3,
                        min_rate=1000).start()
    stalled = []
    try:
        # Every slot: 300 bytes of a body at 1,000 bytes/s, on time for 0.3 s.
        stalled = _upload_heads(running, 3, body=b"x" * 300)
        time.sleep(0.15)
        user = socket.create_connection(("127.0.0.1", running.port), timeout=5)
        time.sleep(0.5)      # the bodies fall behind while the user's head is on its way
        assert _info_status(user, running) == 200
        user.close()
    finally:
        for sock in stalled:
            sock.close()
        running.stop()


def test_a_full_server_refuses_a_new_head_and_keeps_the_requests_it_serves(model):
    """The cap holds when no connection may be closed: with every slot a request
    the server is working for, a new one gets 503 and those are answered."""
    running = AppServer(App(model, "micro"), idle_timeout=30, max_connections=2).start()
    session = _session(running)
    body = json.dumps({"session": session, "hints": []}).encode()
    request = (_head(running, "/api/colorize", Content_Type="application/json",
                     Content_Length=len(body), Connection="close") + body)
    held = []
    try:
        with running.app.model_lock:  # colorizes wait: the server is working for them
            held = [_from(address, running, request) for address in ("127.0.0.2", "127.0.0.3")]
            time.sleep(0.5)
            refused = _from("127.0.0.4", running, f"GET /api/info HTTP/1.1\r\nHost: "
                            f"127.0.0.1:{running.port}\r\n\r\n".encode())
            assert _status(_read_all(refused)) == 503
            refused.close()
        assert [_status(_read_all(sock)) for sock in held] == [200, 200]
    finally:
        for sock in held:
            sock.close()
        running.stop()


def test_bodies_just_begun_cannot_keep_every_slot_from_a_request(model, monkeypatch):
    """Before: a body was not judged until GRACE after its head, so clients that
    reconnect as soon as they are cut kept every slot fresh and a request
    arriving among them got 503 (the trickling test, bodies case, under load)."""
    monkeypatch.setattr(server_module, "GRACE", 3.0)  # every body is fresh throughout
    running = AppServer(App(model, "micro"), idle_timeout=5, max_connections=3,
                        min_rate=RATE).start()
    stalled = []
    try:
        stalled = _upload_heads(running, 3)  # every slot: a body just begun
        time.sleep(0.2)  # their heads are in
        user = socket.create_connection(("127.0.0.1", running.port), timeout=5)
        assert _info_status(user, running) == 200
        user.close()
    finally:
        for sock in stalled:
            sock.close()
        running.stop()
