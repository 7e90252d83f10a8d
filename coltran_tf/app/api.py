"""What the browser tool's API does, apart from HTTP: photos, hints, limits.

The client keeps the hints and sends all of them with every request, so the
server holds only the uploaded photos: compactly (the full-resolution
lightness as float32, 4 bytes per pixel, and small derived images), each
photo's bytes accounted, and the least recently used ones evicted to keep the
total under a memory budget. Input is validated field by field: a bad request
is a 4xx whose message names the field and quotes at most a short excerpt of
what was sent, never a 500. No request names a file-system path.
"""

import base64
import collections
import ctypes
import ctypes.util
import io
import json
import math
import secrets
import threading
from http import HTTPStatus

import numpy as np
from PIL import Image

from coltran_tf.app.suggest import (
    MAX_SUGGESTIONS,
    ColTranSuggester,
    likely_colors,
    starting_hints,
    thumbnail,
)
from coltran_tf.data.decode import decode_bytes
from coltran_tf.data.preprocess import resize_area
from coltran_tf.icolorit.color import AB_NORM, ab_gamut
from coltran_tf.icolorit.inference import Prepared, forward, hint_grid, hints_ab
from coltran_tf.utils.color import apply_chroma

MAX_HINTS = 4096
MAX_EXCERPT = 40
THUMBNAIL_BYTES = 3 * 160 * 160  # suggest.thumbnail's largest


class ApiError(Exception):
    """A request the API refuses: an HTTP status and a message for the page."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def excerpt(value) -> str:
    """A short quote of client input for an error message."""
    text = repr(value)
    return text if len(text) <= MAX_EXCERPT else text[:MAX_EXCERPT] + "..."


def parse_json(body: bytes) -> dict:
    """A request body -> its JSON object; ApiError 400 for anything else (invalid
    UTF-8, syntax, nesting too deep, numbers too long). NaN and Infinity parse,
    and are refused by the field they arrive in."""
    try:
        value = json.loads(body.decode("utf-8") if body else "{}")
    except UnicodeDecodeError:
        raise ApiError(HTTPStatus.BAD_REQUEST, "The request is not UTF-8 text.") from None
    except RecursionError:
        raise ApiError(HTTPStatus.BAD_REQUEST, "The request is nested too deeply.") from None
    except ValueError as error:  # JSONDecodeError, the int digit limit
        reason = str(error).split(":")[0][:80]
        raise ApiError(HTTPStatus.BAD_REQUEST, f"The request is not valid JSON ({reason})."
                       ) from None
    if not isinstance(value, dict):
        raise ApiError(HTTPStatus.BAD_REQUEST, "The request must be a JSON object.")
    return value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _numbers(value, count: int) -> bool:
    return isinstance(value, list) and len(value) == count and all(map(_is_number, value))


def parse_hints(hints, height: int, width: int):
    """The page's hints [{"y", "x", "rgb" | "ab"}] -> (ys, xs, (N, 2) ab) arrays.

    Raises ApiError 400 naming the hint's index and field: y and x finite
    numbers inside the photo, exactly one colour, rgb three numbers in 0..255,
    ab two numbers in [-110, 110] (the model's ab range). rgb hints are
    converted to ab together, in one vectorised call.
    """
    if not isinstance(hints, list) or len(hints) > MAX_HINTS:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"hints must be a list of at most {MAX_HINTS} "
                       "hints.")
    ys, xs, colors = [], [], []
    for number, hint in enumerate(hints):
        if not isinstance(hint, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, f"Hint {number} must be an object "
                           f'{{"y", "x", "rgb" or "ab"}}, got {excerpt(hint)}.')
        for field, size in (("y", height), ("x", width)):
            value = hint.get(field)
            if not _is_number(value) or not 0 <= value < size:
                raise ApiError(HTTPStatus.BAD_REQUEST, f"Hint {number}: {field} must be a "
                               f"number from 0 to {size - 1} (a pixel of the {width}x{height} "
                               f"photo), got {excerpt(value)}.")
        kinds = [k for k in ("rgb", "ab") if k in hint]
        if len(kinds) != 1:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"Hint {number} needs numbers y, x and "
                           "one colour: rgb [r, g, b] or ab [a, b].")
        kind, color = kinds[0], hint[kinds[0]]
        size, low, high = (3, 0, 255) if kind == "rgb" else (2, -AB_NORM, AB_NORM)
        if not _numbers(color, size) or not all(low <= v <= high for v in color):
            raise ApiError(HTTPStatus.BAD_REQUEST, f"Hint {number}: {kind} must be {size} "
                           f"numbers from {low:g} to {high:g}, got {excerpt(color)}.")
        ys.append(hint["y"])
        xs.append(hint["x"])
        colors.append(color)
    return np.asarray(ys, np.float64), np.asarray(xs, np.float64), hints_ab(colors)


class Photo:
    """One uploaded photo, compact: what iColoriT needs (Prepared: the lightness),
    with ColTran the photo at the colorizer's input size and a thumbnail, the
    latest suggestions, and for formats a browser cannot show a JPEG of the
    original for the page's before/after view."""

    def __init__(self, rgb: np.ndarray, coltran_side: int | None, browser_format: bool):
        self.prepared = Prepared(rgb)
        self.square = self.thumbnail = None
        if coltran_side:
            self.square = np.asarray(resize_area(rgb[None], coltran_side)[0], np.uint8)
            self.thumbnail = thumbnail(rgb)
        self.original = None if browser_format else encode(rgb, "jpeg")
        self.suggestions = None
        self.lock = threading.Lock()

    @staticmethod
    def bytes_for(width: int, height: int, coltran_side: int | None) -> int:
        """The bytes a photo of this size will hold (before decoding it)."""
        extra = 3 * coltran_side ** 2 + THUMBNAIL_BYTES if coltran_side else 0
        return Prepared.bytes_for(height, width) + extra

    @property
    def nbytes(self) -> int:
        arrays = [self.square, self.thumbnail]
        if self.suggestions is not None:
            arrays += [self.suggestions.colors, self.suggestions.certainty,
                       self.suggestions.top_symbols, self.suggestions.top_probs]
        return (self.prepared.nbytes + len(self.original or b"")
                + sum(a.nbytes for a in arrays if a is not None))


def _release_freed_memory() -> None:
    """Hands freed heap pages back to the system (glibc keeps them otherwise)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


_LIBC = None
try:  # glibc only; elsewhere the allocator returns large blocks itself
    _name = ctypes.util.find_library("c")
    _LIBC = ctypes.CDLL(_name) if _name else None
    _LIBC.malloc_trim  # noqa: B018 - fails where the function does not exist
except (OSError, AttributeError):
    _LIBC = None


class Sessions:
    """Uploaded photos by random id within a byte budget, least recently used
    evicted first (the one being added never)."""

    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self._items: collections.OrderedDict[str, Photo] = collections.OrderedDict()
        self._lock = threading.Lock()

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(photo.nbytes for photo in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def add(self, photo: Photo) -> str:
        key = secrets.token_urlsafe(12)
        with self._lock:
            self._items[key] = photo
        self.fit(keep=key)
        return key

    def fit(self, keep: str | None = None) -> None:
        """Evicts least recently used photos until the total is within budget."""
        evicted = False
        with self._lock:
            total = sum(photo.nbytes for photo in self._items.values())
            for key in list(self._items):
                if total <= self.budget:
                    break
                if key != keep:
                    total -= self._items.pop(key).nbytes
                    evicted = True
        if evicted:
            _release_freed_memory()

    def get(self, key) -> Photo:
        with self._lock:
            if not isinstance(key, str) or key not in self._items:
                raise ApiError(HTTPStatus.NOT_FOUND, "Unknown or expired session; open the "
                               "image again.")
            self._items.move_to_end(key)
            return self._items[key]


def encode(image: np.ndarray, kind: str) -> bytes:
    buffer = io.BytesIO()
    if kind == "jpeg":
        Image.fromarray(image).save(buffer, "JPEG", quality=92)
    else:
        Image.fromarray(image).save(buffer, "PNG", compress_level=3)
    return buffer.getvalue()


def _data_url(image: np.ndarray, kind: str) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, kind, **({"quality": 90} if kind == "JPEG" else {}))
    return f"data:image/{kind.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


_BROWSER_FORMATS = {"PNG", "JPEG", "GIF", "WEBP", "BMP", "ICO"}


class App:
    """The API: the model, the sessions and the limits."""

    def __init__(self, model, model_name: str, max_upload_bytes: int = 25 * 2**20,
                 max_pixels: int = 40_000_000, max_memory_bytes: int = 2048 * 2**20,
                 coltran: ColTranSuggester | None = None):
        self.model, self.model_name = model, model_name
        self.max_upload_bytes, self.max_pixels = max_upload_bytes, max_pixels
        self.sessions = Sessions(max_memory_bytes)
        self.model_lock = threading.Lock()
        self.coltran = coltran

    def info(self) -> dict:
        return {"model": self.model_name,
                "coltran": self.coltran.name if self.coltran else None,
                "limits": {"max_upload_bytes": self.max_upload_bytes,
                           "max_pixels": self.max_pixels, "max_hints": MAX_HINTS,
                           "max_memory_bytes": self.sessions.budget,
                           "max_suggestions": MAX_SUGGESTIONS}}

    def memory(self) -> dict:
        return {"photos": len(self.sessions), "bytes": self.sessions.total_bytes,
                "budget": self.sessions.budget}

    def open_image(self, data: bytes) -> dict:
        """Any file Pillow can decode (by content, whatever its declared type)."""
        if len(data) > self.max_upload_bytes:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"The file is larger than {self.max_upload_bytes // 2**20} MB.")
        try:
            with Image.open(io.BytesIO(data)) as probe:
                (width, height), kind = probe.size, probe.format
        except Exception:  # noqa: BLE001  (any undecodable upload is the client's error)
            raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Not an image this tool can "
                           "read (PNG, JPEG, WebP, BMP, TIFF, GIF, PNM, ...).") from None
        if width * height > self.max_pixels:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"The image has {width * height / 1e6:.0f} megapixels; the limit is "
                           f"{self.max_pixels / 1e6:.0f}.")
        side = self.coltran.input_side if self.coltran else None
        needed = Photo.bytes_for(width, height, side)
        if needed > self.sessions.budget:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"A {width}x{height} photo needs {needed / 2**20:.0f} MB, more than "
                           f"the server's memory budget of {self.sessions.budget / 2**20:.0f} "
                           "MB (--max_memory_mb).")
        try:
            rgb = decode_bytes(data)
        except ValueError as error:
            raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                           f"Cannot read the image: {str(error)[:120]}.") from None
        session = self.sessions.add(Photo(rgb, side, kind in _BROWSER_FORMATS))
        return {"session": session, "width": rgb.shape[1], "height": rgb.shape[0]}

    def original(self, request: dict) -> tuple[bytes, str]:
        """The uploaded photo as JPEG, for formats the browser cannot show."""
        photo = self.sessions.get(request.get("session"))
        if photo.original is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "The browser shows this photo itself.")
        return photo.original, "image/jpeg"

    def colorize(self, request: dict) -> tuple[bytes, str]:
        prepared = self.sessions.get(request.get("session")).prepared
        kind = request.get("format", "jpeg")
        if kind not in ("jpeg", "png"):
            raise ApiError(HTTPStatus.BAD_REQUEST, "format must be 'jpeg' or 'png'.")
        ys, xs, ab = parse_hints(request.get("hints", []), prepared.height, prepared.width)
        inputs = prepared.model_input_grid(hint_grid(ys, xs, ab, prepared.height,
                                                     prepared.width))
        with self.model_lock:  # one forward pass at a time; the rest runs in parallel
            predicted = forward(self.model, inputs[None])[0]
        return encode(prepared.compose(predicted), kind), f"image/{kind}"

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
                changed = True
            else:
                changed = False
            suggestions = photo.suggestions
        if changed:
            self.sessions.fit()  # the photo grew
        return suggestions

    def suggest(self, request: dict) -> dict:
        photo = self._coltran_photo(request)
        count, seed = request.get("count", 3), request.get("seed", 0)
        if not _is_int(count) or not 1 <= count <= MAX_SUGGESTIONS:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"count must be an integer from 1 to "
                           f"{MAX_SUGGESTIONS}, got {excerpt(count)}.")
        if not _is_int(seed) or not 0 <= seed < 2**31 - MAX_SUGGESTIONS:
            raise ApiError(HTTPStatus.BAD_REQUEST, "seed must be a non-negative integer, got "
                           f"{excerpt(seed)}.")
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
            raise ApiError(HTTPStatus.BAD_REQUEST, "count must be an integer from 1 to 16, got "
                           f"{excerpt(count)}.")
        with photo.lock:
            suggestions = photo.suggestions
        if suggestions is None:
            suggestions = self._suggestions(photo, 3, 0)
        return {"colors": likely_colors(suggestions, y, x, photo.prepared.lightness, count)}


def _pixel(request: dict, prepared: Prepared) -> tuple[int, int]:
    y, x = request.get("y"), request.get("x")
    if not (_is_int(y) and _is_int(x) and 0 <= y < prepared.height and 0 <= x < prepared.width):
        raise ApiError(HTTPStatus.BAD_REQUEST, f"y and x must be integer pixel coordinates "
                       f"inside the {prepared.width}x{prepared.height} photo, got "
                       f"{excerpt(y)}, {excerpt(x)}.")
    return y, x
