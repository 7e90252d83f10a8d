"""Released weights by name: download once, check, convert, cache (offline).

A zip in the release's layout (coltran/colorizer/, color_upsampler/,
spatial_upsampler/) is built from the original's tiny checkpoints in
../shared/fixtures/reference/tiny and served from 127.0.0.1 only.
"""

import contextlib
import functools
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pytest

from coltran_tf.checkpoints import released
from coltran_tf.utils import download
from conftest import REPO_ROOT, require_fixtures, require_shared, run_command

TINY = {stage: "tiny" for stage in released.STAGES}
FIXTURE_OF = {"colorizer": "coltran_core", "color_upsampler": "color_upsampler",
              "spatial_upsampler": "spatial_upsampler"}
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _release_zip(path, truncate_to=None):
    """The tiny fixture checkpoints as coltran/<stage>/ in a zip; returns its sha256."""
    with zipfile.ZipFile(path, "w") as archive:
        for stage, name in FIXTURE_OF.items():
            ckpt = require_fixtures("tiny", name, "ckpt")
            for file in sorted(os.listdir(ckpt)):
                archive.write(os.path.join(ckpt, file), f"coltran/{stage}/{file}")
    if truncate_to is not None:
        with open(path, "r+b") as f:
            f.truncate(int(os.path.getsize(path) * truncate_to))
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class _Handler(http.server.SimpleHTTPRequestHandler):
    delay = 0.0

    def do_GET(self):  # noqa: N802 - the stdlib's name
        time.sleep(self.delay)  # lets concurrent clients overlap
        super().do_GET()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(directory, delay=0.0):
    """An HTTP server for `directory` on 127.0.0.1; yields its base URL."""
    handler = functools.partial(type("H", (_Handler,), {"delay": delay}),
                                directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv(download.HOME_ENV, str(path))
    return path


def _entries(home, kind="released"):
    folder = home / kind
    return sorted(os.listdir(folder)) if folder.exists() else []


def test_first_run_downloads_and_converts_then_the_cache_serves_offline(tmp_path, home):
    from coltran_tf.checkpoints.convert import load_reference_model
    from coltran_tf.checkpoints.loading import load_model
    from coltran_tf.configs import load_config

    site = tmp_path / "site"
    site.mkdir()
    digest = _release_zip(site / "coltran.zip")
    lines = []
    with serve(site) as base:
        url = f"{base}/coltran.zip"
        entry = released.fetch_released(url, TINY, report=lines.append)
    assert lines[0].startswith(f"Downloading {url} (")
    assert any("MB/s" in line and "ETA" in line and "(100%)" in line for line in lines), lines
    assert sum(line.startswith("Converting") for line in lines) == 3
    assert _entries(home) == [os.path.basename(entry)]  # no temporary leftovers
    source = json.loads(open(os.path.join(entry, "source.json")).read())
    assert source["sha256"] == digest and source["url"] == url
    for stage in released.STAGES:
        meta = json.loads(open(os.path.join(entry, stage, "metadata.json")).read())
        assert meta["source"] == url and meta["archive_sha256"] == digest
        assert meta["archive_folder"] == f"coltran/{stage}/" and meta["weights"] == "ema"

    # Server gone: the cache serves every form, with no download and no conversion.
    lines.clear()
    assert released.fetch_released(url, TINY, report=lines.append) == entry
    assert lines == []
    model, _, description = load_model(f"{url}:colorizer", "tiny", "colorizer",
                                       report=lines.append)
    assert lines == [] and "cached in" in description
    config = load_config("colorizer:tiny")
    assert released.resolve_checkpoint(url, config) == os.path.join(entry, "colorizer")
    # The EMA weights of the original's checkpoint, exactly.
    reference, _ = load_reference_model(
        config, require_fixtures("tiny", "coltran_core", "ckpt"), use_ema=True)
    for ours, theirs in zip(model.weights, reference.weights):
        np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(ValueError, match="another model config"):
        released.fetch_released(url, {"colorizer": "tiny,baseline"}, report=lines.append)


def _failure(home, error, url):
    message = str(error)
    assert url in message and str(home) in message and "--checkpoints=DIR" in message
    assert "nothing was kept" in message
    assert _entries(home) == []


def test_http_errors_foreign_archives_and_wrong_configs_leave_nothing(tmp_path, home):
    site = tmp_path / "site"
    site.mkdir()
    _release_zip(site / "coltran.zip")
    with zipfile.ZipFile(site / "two_stages.zip", "w") as archive:
        archive.writestr("coltran/colorizer/checkpoint", "model_checkpoint_path: 'x'")
    quiet = [].append
    with serve(site) as base:
        with pytest.raises(download.FetchError, match="HTTP 404") as error:
            released.fetch_released(f"{base}/missing.zip", TINY, report=quiet)
        _failure(home, error.value, f"{base}/missing.zip")
        with pytest.raises(download.FetchError,
                           match="no checkpoint folder for color_upsampler, spatial_up"):
            released.fetch_released(f"{base}/two_stages.zip", TINY, report=quiet)
        # The converter's refusal, naming keys and the flag that fixes it.
        with pytest.raises(download.FetchError, match="--colorizer_config") as error:
            released.fetch_released(f"{base}/coltran.zip", {**TINY, "colorizer":
                                                            "tiny,baseline"}, report=quiet)
        assert "cond" in str(error.value) and "does not fit" in str(error.value)
        _failure(home, error.value, f"{base}/coltran.zip")
    with pytest.raises(ValueError, match="released:STAGE"):
        released.parse_remote("ftp://example.org/coltran.zip")
    assert released.parse_remote("released:spatial_upsampler") == (
        released.RELEASED_URL, "spatial_upsampler")


def test_released_without_network_names_the_official_url(home, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(download.FetchError, match="cannot reach") as error:
        released.fetch_released("released", report=[].append)
    _failure(home, error.value, "https://storage.googleapis.com/gresearch/coltran/coltran.zip")


def _colorize(*args):
    return run_command("coltran_tf.commands.colorize", *args)


@pytest.mark.slow  # a whole colorize from a served release; -m slow runs it
def test_colorize_checkpoints_url_and_a_truncated_zip(tmp_path, home):
    """The command end to end: a zip URL with stage presets, then a truncated zip."""
    site, photos = tmp_path / "site", tmp_path / "photos"
    site.mkdir()
    photos.mkdir()
    _release_zip(site / "coltran.zip")
    _release_zip(site / "truncated.zip", truncate_to=0.6)
    with open(os.path.join(REPO_ROOT, "data", "camera.png"), "rb") as f:
        (photos / "camera.png").write_bytes(f.read())
    presets = [f"--{stage}_config=tiny" for stage in released.STAGES]
    with serve(site) as base:
        bad = _colorize(f"--checkpoints={base}/truncated.zip", f"--img_dir={photos}",
                        f"--store_dir={tmp_path / 'bad'}", *presets)
        assert bad.returncode == 2, bad.stderr
        assert "truncated" in bad.stderr and f"{base}/truncated.zip" in bad.stderr
        assert "--checkpoints=DIR" in bad.stderr
        assert _entries(home) == []
        ok = _colorize(f"--checkpoints={base}/coltran.zip", f"--img_dir={photos}",
                       f"--store_dir={tmp_path / 'out'}", "--mode=argmax", *presets)
    assert ok.returncode == 0, ok.stderr
    assert "MB/s" in ok.stdout and "Converting spatial_upsampler" in ok.stdout
    assert "1/1 colorized" in ok.stdout
    assert (tmp_path / "out" / "fullres" / "camera.png").exists()
    assert len(_entries(home)) == 1


_FETCH = ("import sys; from coltran_tf.checkpoints.released import fetch_released; "
          "print('ENTRY', fetch_released(sys.argv[1], {s: 'tiny' for s in "
          "('colorizer', 'color_upsampler', 'spatial_upsampler')}), flush=True)")


@pytest.mark.slow  # two processes converting a release; -m slow runs it
def test_two_concurrent_first_runs_both_succeed(tmp_path, home):
    site = tmp_path / "site"
    site.mkdir()
    _release_zip(site / "coltran.zip")
    with serve(site, delay=1.0) as base:
        env = {**ENV, download.HOME_ENV: str(home)}
        runs = [subprocess.Popen([sys.executable, "-c", _FETCH, f"{base}/coltran.zip"],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for _ in range(2)]
        outputs = [run.communicate(timeout=300) for run in runs]
    for run, (_, err) in zip(runs, outputs):
        assert run.returncode == 0, err
    entries = {line.split()[1] for out, _ in outputs for line in out.splitlines()
               if line.startswith("ENTRY")}
    assert len(entries) == 1 and _entries(home) == [os.path.basename(entries.pop())]
    downloads = sum(out.count("Downloading") for out, _ in outputs)
    assert downloads == 1, outputs  # the second waited for the first and used its entry


def test_icolorit_weights_from_a_url(tmp_path, home):
    from coltran_tf.icolorit.convert import WeightsError, load_icolorit, model_from_state_dict

    state_dict = require_shared("fixtures", "icolorit", "tiny", "state_dict.npz")
    site = tmp_path / "site"
    site.mkdir()
    with open(state_dict, "rb") as f:
        data = f.read()
    (site / "icolorit_tiny.npz").write_bytes(data)
    (site / "short.npz").write_bytes(data[: len(data) // 2])
    (site / "page.html").write_text("<html>Google Drive can't scan this file</html>")
    lines = []
    with serve(site) as base:
        model = load_icolorit(f"{base}/icolorit_tiny.npz", report=lines.append)
        for name, match in (("short.npz", "not a readable"), ("page.html", "web page")):
            with pytest.raises(WeightsError, match=match) as error:
                load_icolorit(f"{base}/{name}", report=[].append)
            assert f"{base}/{name}" in str(error.value) and "gdown" in str(error.value)
    assert any("MB/s" in line for line in lines)
    assert len(_entries(home, "icolorit")) == 1  # the failures left nothing
    again = load_icolorit(f"{base}/icolorit_tiny.npz", report=lines.append)  # offline
    with np.load(state_dict) as arrays:
        reference = model_from_state_dict({k: arrays[k] for k in arrays.files})
    for a, b, c in zip(model.weights, again.weights, reference.weights):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)


def test_icolorit_weights_by_url_are_fetched_converted_and_cached_once(tmp_path, home):
    """An official state_dict at a URL (.npz here: PyTorch is optional) becomes a
    cached model directory with where it came from; the second load is offline.
    A URL without a file extension is recognised by its content."""
    from test_icolorit import _official_layout

    from coltran_tf.icolorit import convert
    from coltran_tf.icolorit.model import build_icolorit

    model = build_icolorit("micro")
    served = tmp_path / "served"
    served.mkdir()
    np.savez(served / "weights.npz", **_official_layout(model))
    (served / "weights").write_bytes((served / "weights.npz").read_bytes())
    with open(served / "weights.npz", "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    inputs = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 224, 224, 4)).astype(np.float32)
    with serve(served) as base:
        loaded = {name: convert.load_icolorit(f"{base}/{name}", report=lambda line: None)
                  for name in ("weights.npz", "weights")}
        urls = {name: f"{base}/{name}" for name in loaded}
    for name, url in urls.items():
        np.testing.assert_allclose(np.asarray(loaded[name](inputs)), np.asarray(model(inputs)),
                                   atol=1e-5)
        entry = download.entry_path(url, convert.CACHE_KIND)
        assert sorted(os.listdir(entry)) == ["config.json", "metadata.json", "model.weights.h5",
                                             "source.json"]
        with open(os.path.join(entry, "metadata.json")) as f:
            assert json.load(f) == {"source": url, "sha256": digest,
                                    "bytes": os.path.getsize(served / "weights.npz")}
        # The server is gone: the cached model is used.
        again = convert.load_icolorit(url, report=lambda line: None)
        np.testing.assert_array_equal(np.asarray(again(inputs)), np.asarray(loaded[name](inputs)))
