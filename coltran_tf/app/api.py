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
import os
import secrets
import threading
from http import HTTPStatus

import numpy as np
from PIL import Image

from coltran_tf.app.images import (
    BROWSER_FORMATS,
    MAX_SIDE,
    ImageRefused,
    decode,
    decode_bytes_for,
    probe,
)
from coltran_tf.app.suggest import (
    MAX_SUGGESTIONS,
    ColTranSuggester,
    area_square,
    likely_colors,
    starting_hints,
    thumbnail,
)
from coltran_tf.icolorit.color import AB_NORM, ab_gamut
from coltran_tf.icolorit.inference import Prepared, forward, hint_grid, hints_ab
from coltran_tf.utils.color import apply_chroma

MAX_HINTS = 4096
MAX_EXCERPT = 40
THUMBNAIL_BYTES = 3 * 320 * 320  # suggest.thumbnail's largest


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
    """A JSON number that is finite: any int (however many digits: compared
    exactly, never converted to float), or a finite float."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


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
    original for the page's before/after view. Built from a Pillow RGB image
    in row strips (no full-size array besides the lightness)."""

    def __init__(self, image: Image.Image, coltran_side: int | None, browser_format: bool):
        self.prepared = Prepared.from_image(image)
        self.square = self.thumbnail = None
        if coltran_side:
            self.square = area_square(image, coltran_side)
            self.thumbnail = thumbnail(image)
        self.original = None if browser_format else encode(image, "jpeg")
        self.suggestions = None
        self.lock = threading.Lock()

    @staticmethod
    def bytes_for(width: int, height: int, coltran_side: int | None,
                  browser_format: bool = True) -> int:
        """The bytes a photo of this size will hold (before decoding it); the
        JPEG of an original the browser cannot show is counted at 3 bytes per
        pixel, more than JPEG at quality 92 takes."""
        extra = 3 * coltran_side ** 2 + THUMBNAIL_BYTES if coltran_side else 0
        original = 0 if browser_format else 3 * width * height
        return Prepared.bytes_for(height, width) + extra + original

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
    evicted first (the one being added never). The budget also covers
    reservations: uploads being received and decodes in flight reserve their
    bytes first, evicting photos to make room."""

    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self._items: collections.OrderedDict[str, Photo] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.reserved = 0

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

    def _evict(self, room: int, keep: str | None = None) -> bool:
        """Under the lock: evicts LRU photos until photos + reservations + room fit
        the budget; False (nothing evicted) when even evicting all would not."""
        total = sum(photo.nbytes for photo in self._items.values())
        kept = self._items[keep].nbytes if keep in self._items else 0
        if kept + self.reserved + room > self.budget:
            return False
        evicted = False
        for key in list(self._items):
            if total + self.reserved + room <= self.budget:
                break
            if key != keep:
                total -= self._items.pop(key).nbytes
                evicted = True
        if evicted:
            _release_freed_memory()
        return True

    def fit(self, keep: str | None = None) -> None:
        """Evicts least recently used photos until the total is within budget."""
        with self._lock:
            if not self._evict(0, keep):  # reservations alone exceed it: keep only `keep`
                for key in [k for k in self._items if k != keep]:
                    del self._items[key]

    def reserve(self, nbytes: int) -> bool:
        """Reserves `nbytes` of the budget (evicting photos); False if the
        reservations in flight leave no room even with every photo evicted."""
        with self._lock:
            if not self._evict(nbytes):
                return False
            self.reserved += nbytes
            return True

    def release(self, nbytes: int) -> None:
        with self._lock:
            self.reserved -= nbytes

    def get(self, key) -> Photo:
        with self._lock:
            if not isinstance(key, str) or key not in self._items:
                raise ApiError(HTTPStatus.NOT_FOUND, "Unknown or expired session; open the "
                               "image again.")
            self._items.move_to_end(key)
            return self._items[key]


def encode(image: np.ndarray | Image.Image, kind: str) -> bytes:
    """An (H, W, 3) uint8 array or a Pillow image -> JPEG (quality 92) or PNG bytes."""
    image = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buffer = io.BytesIO()
    if kind == "jpeg":
        image.save(buffer, "JPEG", quality=92)
    else:
        image.save(buffer, "PNG", compress_level=3)
    return buffer.getvalue()


def _data_url(image: np.ndarray, kind: str) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, kind, **({"quality": 90} if kind == "JPEG" else {}))
    return f"data:image/{kind.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


class App:
    """The API: the model, the sessions and the limits."""

    def __init__(self, model, model_name: str, max_upload_bytes: int = 25 * 2**20,
                 max_pixels: int = 40_000_000, max_memory_bytes: int = 2048 * 2**20,
                 coltran: ColTranSuggester | None = None):
        self.model, self.model_name = model, model_name
        self.max_upload_bytes, self.max_pixels = max_upload_bytes, max_pixels
        self.sessions = Sessions(max_memory_bytes)
        self.model_lock = threading.Lock()
        self.decode_lock = threading.Lock()  # one decode at a time (memory)
        self.coltran = coltran

    def info(self) -> dict:
        """The model names (no file-system paths) and the limits."""
        return {"model": _display_name(self.model_name),
                "coltran": _display_name(self.coltran.name) if self.coltran else None,
                "limits": {"max_upload_bytes": self.max_upload_bytes,
                           "max_pixels": self.max_pixels, "max_side": MAX_SIDE,
                           "max_hints": MAX_HINTS,
                           "max_memory_bytes": self.sessions.budget,
                           "max_suggestions": MAX_SUGGESTIONS}}

    def memory(self) -> dict:
        return {"photos": len(self.sessions), "bytes": self.sessions.total_bytes,
                "budget": self.sessions.budget}

    def open_image(self, data: bytes) -> dict:
        """An upload in one of the offered formats (by content, whatever its
        declared type), checked before decoding (images.probe) and decoded one
        at a time under the memory budget: the decode's peak is reserved first,
        so concurrent uploads queue instead of adding up."""
        if len(data) > self.max_upload_bytes:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"The file is larger than {self.max_upload_bytes // 2**20} MB.")
        try:
            width, height, kind = probe(data, self.max_pixels)
        except ImageRefused as error:
            raise ApiError(error.status, error.message) from None
        side = self.coltran.input_side if self.coltran else None
        browser = kind in BROWSER_FORMATS
        needed = max(Photo.bytes_for(width, height, side, browser),
                     decode_bytes_for(width, height))
        if needed > self.sessions.budget:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"A {width}x{height} photo needs {needed / 2**20:.0f} MB to open, "
                           f"more than the server's memory budget of "
                           f"{self.sessions.budget / 2**20:.0f} MB (--max_memory_mb).")
        peak = decode_bytes_for(width, height)
        with self.decode_lock:
            if not self.sessions.reserve(peak):
                raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "Other uploads are using the "
                               "server's memory budget; try again in a moment.")
            try:
                image = decode(data)
                photo = Photo(image, side, browser)
                del image
            except ImageRefused as error:
                raise ApiError(error.status, error.message) from None
            finally:
                self.sessions.release(peak)
        session = self.sessions.add(photo)
        return {"session": session, "width": photo.prepared.width,
                "height": photo.prepared.height}

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


def _display_name(name: str) -> str:
    """A model's name for the page: a path's last part (no absolute paths)."""
    return os.path.basename(os.path.normpath(name)) if name else name


def _pixel(request: dict, prepared: Prepared) -> tuple[int, int]:
    y, x = request.get("y"), request.get("x")
    if not (_is_int(y) and _is_int(x) and 0 <= y < prepared.height and 0 <= x < prepared.width):
        raise ApiError(HTTPStatus.BAD_REQUEST, f"y and x must be integer pixel coordinates "
                       f"inside the {prepared.width}x{prepared.height} photo, got "
                       f"{excerpt(y)}, {excerpt(x)}.")
    return y, x
