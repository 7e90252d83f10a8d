"""Fetching a URL once into the toolkit's cache.

`fetch_cached(url, kind, prepare)` downloads `url` (http(s):// with requests,
gs:// through TensorFlow's file system) under a temporary name with a progress
line, lets `prepare` turn the download into the entry's files (check,
extract, convert) in a staging directory, and renames that directory into
`cache_home()/<kind>/<name>` in one step. Later calls find the entry and use no
network. A lock on the `<kind>` directory serialises concurrent first calls
(the second waits and then finds the first one's entry); a failed fetch
leaves nothing behind.
"""

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Callable

from coltran_tf.utils.files import write_json
from coltran_tf.utils.progress import format_duration

HOME_ENV = "COLTRAN_TF_HOME"
SOURCE_FILE = "source.json"
_CHUNK = 1 << 20
_TIMEOUT = (15, 60)  # seconds to connect, and between received bytes


class FetchError(OSError):
    """A download or its preparation failed; the message names the URL, the
    cache path and what to do instead."""


def cache_home() -> str:
    """$COLTRAN_TF_HOME, else $KERAS_HOME/coltran_tf (default ~/.keras/coltran_tf)."""
    home = os.environ.get(HOME_ENV)
    if not home:
        keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"),
                                                                  ".keras")
        home = os.path.join(keras_home, "coltran_tf")
    return os.path.abspath(os.path.expanduser(home))


def is_url(spec: str | None) -> bool:
    return bool(spec) and spec.startswith(("http://", "https://", "gs://"))


def entry_path(url: str, kind: str) -> str:
    """Where `url`'s entry lives: <home>/<kind>/<file stem>-<12 hex of the URL's sha256>."""
    stem = os.path.splitext(os.path.basename(urllib.parse.urlsplit(url).path))[0]
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:48] or "download"
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return os.path.join(cache_home(), kind, f"{stem}-{digest}")


class _Progress:
    """'12.0/850.0 MB (1%) | 9.8 MB/s | ETA 1m25s' lines, at most one per `every` s."""

    def __init__(self, total: int | None, report, every: float = 2.0):
        self.total, self.report, self.every = total, report, every
        self.start = self.last = time.monotonic()
        self.done = 0

    def update(self, count: int, final: bool = False) -> None:
        self.done += count
        now = time.monotonic()
        if not final and now - self.last < self.every:
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        mb = self.done / 1e6
        if self.total:
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            line = (f"  {mb:.1f}/{self.total / 1e6:.1f} MB ({100 * self.done // self.total}%)"
                    f" | {rate / 1e6:.1f} MB/s | ETA {format_duration(eta)}")
        else:
            line = f"  {mb:.1f} MB | {rate / 1e6:.1f} MB/s"
        self.report(line)


def _http_chunks(url: str):
    """(total bytes or None, iterator of chunks) of an http(s) URL."""
    import requests

    try:
        response = requests.get(url, stream=True, timeout=_TIMEOUT)
        response.raise_for_status()
    except requests.HTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        reason = error.response.reason if error.response is not None else ""
        raise FetchError(f"{url} answered HTTP {status} {reason}".rstrip()) from None
    except requests.RequestException as error:
        raise FetchError(f"cannot reach {url} (no network, or the host is down: "
                         f"{type(error).__name__})") from None
    if response.headers.get("Content-Type", "").startswith("text/html"):
        response.close()
        raise FetchError(f"{url} answered with a web page, not a file (a login or "
                         "confirmation page, e.g. Google Drive's for large files)")
    length = response.headers.get("Content-Length")
    encoded = response.headers.get("Content-Encoding", "identity") != "identity"
    total = int(length) if length and length.isdigit() and not encoded else None

    def chunks():
        try:
            yield from response.iter_content(_CHUNK)
        except requests.RequestException as error:
            raise FetchError(f"the download of {url} broke off "
                             f"({type(error).__name__})") from None
        finally:
            response.close()

    return total, chunks()


def _gcs_chunks(url: str):
    import tensorflow as tf

    try:
        total = tf.io.gfile.stat(url).length
        handle = tf.io.gfile.GFile(url, "rb")
    except tf.errors.OpError as error:
        raise FetchError(f"cannot read {url} ({error.message})") from None

    def chunks():
        with handle:
            while chunk := handle.read(_CHUNK):
                yield chunk

    return total, chunks()


def download(url: str, path: str, report=print) -> dict:
    """Streams `url` into `path`; returns {"url", "sha256", "bytes"}.

    Raises:
      FetchError: no network, an HTTP error, a web page instead of a file, or
        fewer bytes than the server announced.
    """
    total, chunks = (_gcs_chunks if url.startswith("gs://") else _http_chunks)(url)
    size = f" ({total / 1e6:.1f} MB)" if total else ""
    report(f"Downloading {url}{size}")
    digest, progress = hashlib.sha256(), _Progress(total, report)
    with open(path, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
            digest.update(chunk)
            progress.update(len(chunk))
    progress.update(0, final=True)
    if total is not None and progress.done != total:
        raise FetchError(f"the download of {url} is truncated: {progress.done} of {total} "
                         "bytes arrived")
    return {"url": url, "sha256": digest.hexdigest(), "bytes": progress.done}


@contextlib.contextmanager
def _locked(directory: str, report):
    """An exclusive lock on `directory` (flock; no lock where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # the atomic rename still keeps the cache whole
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            report(f"Waiting for another process that is filling {directory} ...")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def fetch_cached(url: str, kind: str, prepare: Callable[[str, str, dict], None],
                 manual: str, report=print) -> str:
    """The cache entry of `url`, fetched and prepared on first use.

    Args:
      url: http(s):// or gs:// URL.
      kind: the cache's sub-directory (e.g. "released").
      prepare: prepare(download_path, staging_dir, info) fills staging_dir
        with the entry's files (info: url, sha256, bytes); raises on a bad
        download (its message is kept).
      manual: how to do it by hand, appended to every error.

    Returns:
      The entry directory (holding what prepare wrote and source.json).

    Raises:
      FetchError naming the URL, the cache path and `manual`.
    """
    entry = entry_path(url, kind)
    if os.path.isdir(entry):
        return entry
    parent = os.path.dirname(entry)
    os.makedirs(parent, exist_ok=True)
    with _locked(parent, report):
        if os.path.isdir(entry):  # another process finished it while we waited
            return entry
        name = os.path.basename(entry)
        for stale in os.listdir(parent):  # what a killed fetch left (we hold the lock)
            if stale.startswith(f".{name}.tmp-"):
                shutil.rmtree(os.path.join(parent, stale), ignore_errors=True)
        work = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
        try:
            staging = os.path.join(work, "entry")
            os.makedirs(staging)
            archive = os.path.join(work, "download")
            info = download(url, archive, report)
            prepare(archive, staging, info)
            write_json(os.path.join(staging, SOURCE_FILE), {**info, "fetched": time.time()})
            os.rename(staging, entry)
        except Exception as error:  # noqa: BLE001 - every failure gets the same advice
            raise FetchError(f"Could not fetch {url}: {error}\nCache: {entry} (nothing was "
                             f"kept there). {manual}") from error
        finally:
            shutil.rmtree(work, ignore_errors=True)
    report(f"Cached in {entry}")
    return entry
