"""Uploads, opened warily: the formats the page offers, bounded decode work.

An upload reaches a decoder only when it is one of the formats the page
offers (PNG, JPEG, WebP, BMP, TIFF, GIF, PNM), whatever its declared type,
and only after checks that cost nothing next to the decode: the file's own
structure (a JPEG's scan count, a PNG's chunk count: each scan is another
pass over the whole image, each chunk another step of the reader) and the
size its header declares (the pixel count, and each side within what every
output path can write: JPEG stops at 65,535). A refusal names the limit.

The decoded photo stays a Pillow RGB image (4 bytes per pixel); what the
server keeps of it is computed from there in row strips, so the peak of an
upload is a few bytes per pixel plus a constant (`decode_bytes_for`).
"""

import io
import warnings
from http import HTTPStatus

from PIL import Image

# Pillow's names of the formats the page offers; PPM reads PBM, PGM and PPM.
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF", "PPM")
BROWSER_FORMATS = ("PNG", "JPEG", "MPO", "GIF", "WEBP", "BMP")  # shown by the page itself
MAX_SIDE = 65_500       # libjpeg's largest side (65,535) with a margin: previews are JPEG
MAX_JPEG_SCANS = 100    # a progressive JPEG has about 10; each scan is a pass over the image
MAX_PNG_CHUNKS = 32_768  # a 25 MB PNG in 8 KB IDAT chunks has about 3,200
DECODE_BYTES_PER_PIXEL = 14  # measured: 10-13 by mode (tests/test_app_hostile.py)
DECODE_EXTRA_BYTES = 64 * 2**20  # row strips, codec buffers: outside the budget


class ImageRefused(Exception):
    """An upload the server will not decode: an HTTP status and a message."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _unsupported(reason: str) -> ImageRefused:
    return ImageRefused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, reason)


def _too_large(reason: str) -> ImageRefused:
    return ImageRefused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, reason)


def _check_png_chunks(data: bytes) -> None:
    position, count = 8, 0
    while position + 8 <= len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        kind = data[position + 4:position + 8]
        count += 1
        if count > MAX_PNG_CHUNKS:
            raise _too_large(f"The PNG has more than {MAX_PNG_CHUNKS} chunks (the limit); "
                             "save it again with any editor.")
        if kind == b"IEND":
            return
        position += 12 + length


def _check_structure(data: bytes) -> None:
    """Refuses files whose decoding would cost far more than their size says."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        _check_png_chunks(data)
    elif data.startswith(b"\xff\xd8"):
        # Start-of-scan markers cannot occur inside entropy-coded data (an 0xFF
        # there is followed by 0x00 or a restart marker), so counting them over
        # the whole file counts the scans (and those of an embedded thumbnail).
        scans = data.count(b"\xff\xda")
        if scans > MAX_JPEG_SCANS:
            raise _too_large(f"The JPEG has {scans} scans; the limit is {MAX_JPEG_SCANS} "
                             "(a progressive JPEG has about 10). Save it again with any editor.")


def probe(data: bytes, max_pixels: int) -> tuple[int, int, str]:
    """(width, height, Pillow format) of an upload, from its header only.

    Raises ImageRefused: 415 for anything but the offered formats, 413 for a
    photo over `max_pixels`, a side over MAX_SIDE or a file whose structure
    exceeds the decode limits.
    """
    if not data:
        raise _unsupported("The file is empty.")
    _check_structure(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bad metadata, bombs: judged below
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                (width, height), kind = image.size, image.format
    except Image.DecompressionBombError:
        raise _too_large(f"The image has more than {Image.MAX_IMAGE_PIXELS * 2 / 1e6:.0f} "
                         f"megapixels; the limit is {max_pixels / 1e6:g}.") from None
    except Exception:  # noqa: BLE001 - whatever a header parser raises, the file is at fault
        raise _unsupported("Not an image this tool reads: PNG, JPEG, WebP, BMP, TIFF, GIF or "
                           "PNM (PBM/PGM/PPM).") from None
    if width < 1 or height < 1:
        raise _unsupported(f"The image is empty ({width}x{height}).")
    if width * height > max_pixels:
        raise _too_large(f"The image has {width * height / 1e6:.1f} megapixels; the limit is "
                         f"{max_pixels / 1e6:g} (--max_megapixels).")
    if max(width, height) > MAX_SIDE:
        raise _too_large(f"The image is {width}x{height}; a side may be at most {MAX_SIDE} "
                         "pixels (the largest JPEG preview).")
    return width, height, kind


def decode_bytes_for(width: int, height: int) -> int:
    """An upper bound of the memory that decoding a photo of this size takes at
    its peak (the Pillow image, a converted copy, the lightness kept), apart
    from the constant DECODE_EXTRA_BYTES (row strips, codec buffers)."""
    return DECODE_BYTES_PER_PIXEL * width * height


def _loaded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data), formats=FORMATS)
    image.load()
    return image


def decode(data: bytes) -> Image.Image:
    """An upload (checked by `probe`) -> a Pillow RGB image, upright, alpha
    composited over white, 8 bits per channel.

    Raises ImageRefused 415 naming the problem for data that does not decode.
    """
    from coltran_tf.data.decode import to_rgb_image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's notes on bad metadata: not the log's
            return to_rgb_image(_loaded(data))  # no reference kept to the decoded copy
    except MemoryError:
        raise ImageRefused(HTTPStatus.SERVICE_UNAVAILABLE, "The server ran out of memory "
                           "decoding the image; try again or a smaller one.") from None
    except Exception as error:  # noqa: BLE001 - corrupt data raises anything
        raise _unsupported(f"Cannot read the image ({type(error).__name__}: "
                           f"{str(error)[:100]}).") from None
