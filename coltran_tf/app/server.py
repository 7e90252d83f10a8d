"""The app's HTTP server: one page and a small JSON/image API (stdlib only).

API (errors are JSON {"error": message} with a 4xx status the page shows):
  GET  /                     the page
  GET  /api/info             {"model": ..., "limits": {...}}
  POST /api/session          body: the image file (Content-Type image/*) ->
                             {"session", "width", "height"}
  POST /api/colorize         JSON {"session", "hints": [{"y", "x", "rgb"|"ab"}],
                             "format": "jpeg"|"png"} -> the colorized image at the
                             photo's full resolution (jpeg: fast preview, png: download)

The client keeps the hints and sends all of them with every request, so the
server holds only the uploaded photos (bounded, least recently used first) and
concurrent requests cannot corrupt each other's state. No request names a
file-system path.
"""

import collections
import io
import json
import os
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image

from coltran_tf.data.decode import decode_bytes
from coltran_tf.icolorit.inference import HintError, Prepared, colorize_prepared

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
MAX_HINTS = 4096


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Sessions:
    """Uploaded photos by random id, at most `capacity`, least recently used evicted."""

    def __init__(self, capacity: int = 16):
        self._items, self._lock, self.capacity = collections.OrderedDict(), threading.Lock(), capacity

    def add(self, prepared: Prepared) -> str:
        key = secrets.token_urlsafe(12)
        with self._lock:
            self._items[key] = prepared
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return key

    def get(self, key) -> Prepared:
        with self._lock:
            if not isinstance(key, str) or key not in self._items:
                raise ApiError(HTTPStatus.NOT_FOUND, "Unknown or expired session; open the "
                               "image again.")
            self._items.move_to_end(key)
            return self._items[key]


class App:
    """What the handler serves: the model, the sessions and the limits."""

    def __init__(self, model, model_name: str, max_upload_bytes: int = 25 * 2**20,
                 max_pixels: int = 40_000_000, sessions: int = 16):
        self.model, self.model_name = model, model_name
        self.max_upload_bytes, self.max_pixels = max_upload_bytes, max_pixels
        self.sessions = Sessions(sessions)
        self.model_lock = threading.Lock()

    def open_image(self, data: bytes) -> dict:
        if len(data) > self.max_upload_bytes:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"The file is larger than {self.max_upload_bytes // 2**20} MB.")
        try:
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
        except Exception:  # noqa: BLE001  (any undecodable upload is the client's error)
            raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                           "Not an image this tool can read (PNG, JPEG, WebP, BMP, TIFF, ...).")
        if width * height > self.max_pixels:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"The image has {width * height / 1e6:.0f} megapixels; the limit is "
                           f"{self.max_pixels / 1e6:.0f}.")
        try:
            rgb = decode_bytes(data)
        except ValueError as error:
            raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"Cannot read the image: {error}.")
        session = self.sessions.add(Prepared(rgb))
        return {"session": session, "width": rgb.shape[1], "height": rgb.shape[0]}

    def colorize(self, request: dict) -> tuple[bytes, str]:
        prepared = self.sessions.get(request.get("session"))
        hints = request.get("hints", [])
        if not isinstance(hints, list) or len(hints) > MAX_HINTS:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"hints must be a list of at most "
                           f"{MAX_HINTS} hints.")
        parsed = []
        for number, hint in enumerate(hints):
            color = hint.get("rgb", hint.get("ab")) if isinstance(hint, dict) else None
            if color is None or not all(isinstance(hint.get(k), (int, float)) for k in "yx"):
                raise ApiError(HTTPStatus.BAD_REQUEST, f"Hint {number} needs numbers y, x and "
                               "a colour rgb [r, g, b] or ab [a, b].")
            parsed.append((hint["y"], hint["x"], color))
        kind = request.get("format", "jpeg")
        if kind not in ("jpeg", "png"):
            raise ApiError(HTTPStatus.BAD_REQUEST, "format must be 'jpeg' or 'png'.")
        try:
            with self.model_lock:
                result = colorize_prepared(self.model, prepared, parsed)
        except HintError as error:
            raise ApiError(HTTPStatus.BAD_REQUEST, str(error))
        buffer = io.BytesIO()
        if kind == "jpeg":
            Image.fromarray(result).save(buffer, "JPEG", quality=92)
        else:
            Image.fromarray(result).save(buffer, "PNG", compress_level=3)
        return buffer.getvalue(), f"image/{kind}"


class Handler(BaseHTTPRequestHandler):
    app: App  # set by make_server
    server_version = "coltran_tf-app"

    def log_message(self, format, *args):  # quiet: one line per error only
        pass

    def _send(self, status, body: bytes, content_type: str):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status, payload):
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.app.max_upload_bytes:
            # Read (and drop) what the client sends, up to a bound, so that it sees
            # the JSON answer instead of a reset connection.
            left = min(length, 4 * self.app.max_upload_bytes)
            while left > 0:
                chunk = self.rfile.read(min(left, 2**20))
                if not chunk:
                    break
                left -= len(chunk)
            self.close_connection = True
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"The file is larger than {self.app.max_upload_bytes // 2**20} MB.")
        return self.rfile.read(length)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path in ("/", "/index.html"):
            with open(os.path.join(STATIC_DIR, "index.html"), "rb") as f:
                return self._send(HTTPStatus.OK, f.read(), "text/html; charset=utf-8")
        if path == "/api/info":
            return self._json(HTTPStatus.OK, {
                "model": self.app.model_name,
                "limits": {"max_upload_bytes": self.app.max_upload_bytes,
                           "max_pixels": self.app.max_pixels, "max_hints": MAX_HINTS}})
        self._json(HTTPStatus.NOT_FOUND, {"error": f"No such page: {path}"})

    def do_POST(self):
        try:
            if self.path == "/api/session":
                kind = self.headers.get("Content-Type", "")
                if not kind.startswith("image/"):
                    raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                                   "Upload an image file (Content-Type image/*).")
                return self._json(HTTPStatus.OK, self.app.open_image(self._body()))
            if self.path == "/api/colorize":
                try:
                    request = json.loads(self._body() or b"{}")
                except json.JSONDecodeError:
                    raise ApiError(HTTPStatus.BAD_REQUEST, "The request is not valid JSON.")
                if not isinstance(request, dict):
                    raise ApiError(HTTPStatus.BAD_REQUEST, "The request must be a JSON object.")
                body, kind = self.app.colorize(request)
                return self._send(HTTPStatus.OK, body, kind)
            raise ApiError(HTTPStatus.NOT_FOUND, f"No such endpoint: {self.path}")
        except ApiError as error:
            self._json(error.status, {"error": error.message})


def make_server(app: App, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A threaded server (port 0: a free one; see server.server_address)."""
    handler = type("BoundHandler", (Handler,), {"app": app})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
