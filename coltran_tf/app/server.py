"""The app's HTTP server: one page and a small JSON/image API (stdlib only).

API (errors are JSON {"error": message} with a 4xx status the page shows):
  GET  /                     the page
  GET  /api/info             {"model": ..., "limits": {...}}
  POST /api/session          body: the image file (Content-Type image/*) ->
                             {"session", "width", "height"}
  POST /api/colorize         JSON {"session", "hints": [{"y", "x", "rgb"|"ab"}],
                             "format": "jpeg"|"png"} -> the colorized image at the
                             photo's full resolution (jpeg: fast preview, png: download)
  POST /api/gamut            JSON {"session", "y", "x"} -> {"lightness", "ab_max",
                             "image"}: the sRGB colours of that pixel's lightness
                             as an ab plane (PNG data URL, out of gamut transparent)
  POST /api/suggest          JSON {"session", "count", "seed"} -> {"suggestions":
                             [{"image", "hints"}]}: ColTran's colourings (JPEG
                             data URLs) and the hints that start from each
  POST /api/likely           JSON {"session", "y", "x", "count"} -> {"colors":
                             [{"rgb", "probability"}]}: ColTran's most likely
                             colours at that pixel (samples suggestions first if
                             the photo has none yet)

The client keeps the hints and sends all of them with every request, so the
server holds only the uploaded photos (bounded, least recently used first) and
concurrent requests cannot corrupt each other's state. No request names a
file-system path.
"""

import base64
import collections
import io
import json
import os
import secrets
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image

from coltran_tf.app.suggest import (MAX_SUGGESTIONS, ColTranSuggester, likely_colors,
                                    starting_hints, thumbnail)
from coltran_tf.data.decode import decode_bytes
from coltran_tf.data.preprocess import resize_area
from coltran_tf.icolorit.color import AB_NORM, ab_gamut
from coltran_tf.icolorit.inference import HintError, Prepared, colorize_prepared
from coltran_tf.sampling.colorize_folder import apply_chroma

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
MAX_HINTS = 4096


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Photo:
    """One uploaded photo: what iColoriT needs (prepared once), and, with ColTran,
    the photo at the colorizer's input resolution, a thumbnail for the
    suggestions and the latest suggestions (replaced whole, under `lock`)."""

    def __init__(self, rgb: np.ndarray, coltran_side: int | None):
        self.prepared = Prepared(rgb)
        self.square = self.thumbnail = None
        if coltran_side:
            self.square = np.asarray(resize_area(rgb[None], coltran_side)[0], np.uint8)
            self.thumbnail = thumbnail(rgb)
        self.suggestions = None
        self.lock = threading.Lock()


class Sessions:
    """Uploaded photos by random id, at most `capacity`, least recently used evicted."""

    def __init__(self, capacity: int = 16):
        self._items, self._lock, self.capacity = collections.OrderedDict(), threading.Lock(), capacity

    def add(self, photo: Photo) -> str:
        key = secrets.token_urlsafe(12)
        with self._lock:
            self._items[key] = photo
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return key

    def get(self, key) -> Photo:
        with self._lock:
            if not isinstance(key, str) or key not in self._items:
                raise ApiError(HTTPStatus.NOT_FOUND, "Unknown or expired session; open the "
                               "image again.")
            self._items.move_to_end(key)
            return self._items[key]


class App:
    """What the handler serves: the model, the sessions and the limits."""

    def __init__(self, model, model_name: str, max_upload_bytes: int = 25 * 2**20,
                 max_pixels: int = 40_000_000, sessions: int = 16,
                 coltran: ColTranSuggester | None = None):
        self.model, self.model_name = model, model_name
        self.max_upload_bytes, self.max_pixels = max_upload_bytes, max_pixels
        self.sessions = Sessions(sessions)
        self.model_lock = threading.Lock()
        self.coltran = coltran

    def info(self) -> dict:
        return {"model": self.model_name,
                "coltran": self.coltran.name if self.coltran else None,
                "limits": {"max_upload_bytes": self.max_upload_bytes,
                           "max_pixels": self.max_pixels, "max_hints": MAX_HINTS,
                           "max_suggestions": MAX_SUGGESTIONS}}

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
        side = 4 * self.coltran.resolution if self.coltran else None
        session = self.sessions.add(Photo(rgb, side))
        return {"session": session, "width": rgb.shape[1], "height": rgb.shape[0]}

    def colorize(self, request: dict) -> tuple[bytes, str]:
        prepared = self.sessions.get(request.get("session")).prepared
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

    def gamut(self, request: dict) -> dict:
        photo = self.sessions.get(request.get("session"))
        y, x = _pixel(request, photo.prepared)
        lightness = round(float(photo.prepared.lightness[y, x, 0]), 2)
        return {"lightness": lightness, "ab_max": AB_NORM,
                "image": _data_url(ab_gamut(lightness), "PNG")}

    def _coltran_photo(self, request: dict) -> Photo:
        if self.coltran is None:
            raise ApiError(HTTPStatus.BAD_REQUEST, "This server has no ColTran model; start it "
                           "with --coltran_dir=DIR (colorizer/ and color_upsampler/) for "
                           "suggestions.")
        return self.sessions.get(request.get("session"))

    def _suggestions(self, photo: Photo, count: int, seed: int):
        with photo.lock:
            current = photo.suggestions
            if current is None or current.seed != seed or len(current.colors) != count:
                photo.suggestions = self.coltran.sample(photo.square, count, seed)
            return photo.suggestions

    def suggest(self, request: dict) -> dict:
        photo = self._coltran_photo(request)
        count, seed = request.get("count", 3), request.get("seed", 0)
        if not _is_int(count) or not 1 <= count <= MAX_SUGGESTIONS:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"count must be an integer from 1 to "
                           f"{MAX_SUGGESTIONS}.")
        if not _is_int(seed) or not 0 <= seed < 2**31 - MAX_SUGGESTIONS:
            raise ApiError(HTTPStatus.BAD_REQUEST, "seed must be a non-negative integer.")
        suggestions = self._suggestions(photo, count, seed)
        return {"seed": seed, "suggestions": [
            {"image": _data_url(apply_chroma(photo.thumbnail, colors), "JPEG"),
             "hints": starting_hints(suggestions, k, photo.prepared.lightness)}
            for k, colors in enumerate(suggestions.colors)]}

    def likely(self, request: dict) -> dict:
        photo = self._coltran_photo(request)
        y, x = _pixel(request, photo.prepared)
        count = request.get("count", 6)
        if not _is_int(count) or not 1 <= count <= 16:
            raise ApiError(HTTPStatus.BAD_REQUEST, "count must be an integer from 1 to 16.")
        with photo.lock:
            suggestions = photo.suggestions
        if suggestions is None:
            suggestions = self._suggestions(photo, 3, 0)
        return {"colors": likely_colors(suggestions, y, x, photo.prepared.lightness, count)}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _pixel(request: dict, prepared: Prepared) -> tuple[int, int]:
    y, x = request.get("y"), request.get("x")
    if not (_is_int(y) and _is_int(x) and 0 <= y < prepared.height and 0 <= x < prepared.width):
        raise ApiError(HTTPStatus.BAD_REQUEST, f"y and x must be integer pixel coordinates "
                       f"inside the {prepared.width}x{prepared.height} photo.")
    return y, x


def _data_url(image: np.ndarray, kind: str) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, kind, **({"quality": 90} if kind == "JPEG" else {}))
    return f"data:image/{kind.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


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
            return self._json(HTTPStatus.OK, self.app.info())
        self._json(HTTPStatus.NOT_FOUND, {"error": f"No such page: {path}"})

    def do_POST(self):
        try:
            if self.path == "/api/session":
                kind = self.headers.get("Content-Type", "")
                if not kind.startswith("image/"):
                    raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                                   "Upload an image file (Content-Type image/*).")
                return self._json(HTTPStatus.OK, self.app.open_image(self._body()))
            endpoint = {"/api/colorize": self.app.colorize, "/api/gamut": self.app.gamut,
                        "/api/suggest": self.app.suggest, "/api/likely": self.app.likely}
            if self.path not in endpoint:
                raise ApiError(HTTPStatus.NOT_FOUND, f"No such endpoint: {self.path}")
            try:
                request = json.loads(self._body() or b"{}")
            except json.JSONDecodeError:
                raise ApiError(HTTPStatus.BAD_REQUEST, "The request is not valid JSON.")
            if not isinstance(request, dict):
                raise ApiError(HTTPStatus.BAD_REQUEST, "The request must be a JSON object.")
            answer = endpoint[self.path](request)
            if isinstance(answer, dict):
                return self._json(HTTPStatus.OK, answer)
            return self._send(HTTPStatus.OK, *answer)
        except ApiError as error:
            self._json(error.status, {"error": error.message})
        except Exception as error:  # noqa: BLE001  (the page shows it; the log has the trace)
            traceback.print_exc()
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR,
                       {"error": f"The server failed: {type(error).__name__}: {error}"})


def make_server(app: App, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A threaded server (port 0: a free one; see server.server_address)."""
    handler = type("BoundHandler", (Handler,), {"app": app})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
