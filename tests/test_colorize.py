"""`coltran_tf.commands.colorize`: a folder of mixed photos through all three stages."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from coltran_tf.checkpoints import loading
from coltran_tf.sampling import colorize_folder as cf
from coltran_tf.sampling.pipeline import Pipeline
from coltran_tf.utils.color import apply_chroma, luma
from conftest import (
    REFERENCE_FIXTURES,
    REPO_ROOT,
    STAGES,
    Interrupted,
    interrupt_after,
    require_fixtures,
    run_command,
    write_tiny_models,
)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny models of the three stages at 16 -> 64 px (the paper's 64 -> 256 costs
    16x more attention and tests nothing more)."""
    root = tmp_path_factory.mktemp("models")
    write_tiny_models(root, low_resolution=16, spatial_resolution=64)
    return root


@pytest.fixture(scope="module")
def pipeline(models):
    loaded = {name: loading.load_model(str(models / name), stage=name) for name in STAGES}
    return Pipeline(*(loaded[name][0] for name in STAGES),
                    sources={name: loaded[name][2] for name in STAGES})


def _photos(root):
    """Colour, grayscale, 16-bit, tiny, wide and tall files, a broken one and a note."""
    cat = np.asarray(Image.open(os.path.join(REPO_ROOT, "data", "chelsea.png")).convert("RGB"))
    (root / "sub").mkdir(parents=True)
    Image.fromarray(cat).resize((160, 100)).save(root / "cat.jpg", quality=90)
    Image.fromarray(cat).convert("L").resize((45, 150)).save(root / "sub" / "tall_gray.png")
    Image.fromarray(cat).resize((250, 30)).save(root / "wide.png")
    Image.fromarray(cat).resize((40, 30)).save(root / "wide.bmp")  # same stem as wide.png
    gray16 = (np.asarray(Image.fromarray(cat).convert("L").resize((64, 48)), np.uint16) * 257)
    Image.fromarray(gray16).save(root / "gray16.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (root / "notes.txt").write_text("not an image")
    return {"cat.jpg": (100, 160), "sub/tall_gray.png": (150, 45), "wide.png": (30, 250),
            "wide.bmp": (30, 40), "gray16.png": (48, 64)}


def _outputs(store, stage):
    return sorted(os.path.relpath(os.path.join(r, f), store / stage)
                  for r, _, files in os.walk(store / stage) for f in files)


def test_colorize_command_on_a_mixed_folder(models, tmp_path):
    sizes = _photos(tmp_path / "photos")
    store = tmp_path / "photos" / "colorized"  # inside img_dir: never read back as input
    result = run_command("coltran_tf.commands.colorize", f"--img_dir={tmp_path / 'photos'}",
                         f"--store_dir={store}", f"--checkpoints={models}", "--num_samples=2",
                         "--batch_size=3")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "images/s" in out and "ETA" in out
    assert "1 file(s) skipped" in out and "broken.jpg" in out
    expected = sorted(f"{stem}_s{k}.png" for stem in ("cat", "sub/tall_gray", "wide_png",
                                                      "wide_bmp", "gray16") for k in (0, 1))
    for stage in cf.STAGE_DIRS:
        assert _outputs(store, stage) == expected, stage
    stems = {"cat.jpg": "cat", "sub/tall_gray.png": "sub/tall_gray", "wide.png": "wide_png",
             "wide.bmp": "wide_bmp", "gray16.png": "gray16"}
    for rel, (height, width) in sizes.items():
        original = np.asarray(Image.open(tmp_path / "photos" / rel).convert("RGB")
                              if not rel.startswith("gray16") else
                              Image.open(tmp_path / "photos" / rel))
        for k in (0, 1):
            name = f"{stems[rel]}_s{k}.png"
            assert Image.open(store / "stage1" / name).size == (16, 16)
            assert Image.open(store / "uncertainty" / name).mode == "L"
            assert Image.open(store / "stage2" / name).size == (16, 16)
            assert Image.open(store / "final" / name).size == (64, 64)
            full = np.asarray(Image.open(store / "fullres" / name))
            assert full.shape == (height, width, 3)
            assert not cf.is_grayscale(full), f"{name} came out gray"
            if original.ndim == 3:  # the photo's own luminance is kept
                shift = luma(full.astype(np.float32)) - luma(original.astype(np.float32))
                assert np.median(np.abs(shift)) < 1.0, name
    report = json.loads((store / "report.json").read_text())
    assert report["skipped"][0]["file"] == "broken.jpg"
    assert "not an image" in report["skipped"][0]["reason"]
    assert (report["grayscale"], report["color"]) == (2, 3)
    sheet = Image.open(store / "contact_sheet.png")
    assert sheet.size[1] == 5 * (160 + 4) + 4  # one row per colorized photo
    assert not [f for r, _, files in os.walk(store) for f in files if f.endswith(".tmp.png")]
    assert len(cf.list_images(str(tmp_path / "photos"), exclude=str(store))) == 6


def _pngs(store):
    return {os.path.join(stage, name): np.asarray(Image.open(store / stage / name))
            for stage in cf.STAGE_DIRS for name in _outputs(store, stage)}


def test_an_interrupted_run_continues_without_redoing_or_losing_work(pipeline, tmp_path):
    _photos(tmp_path / "photos")
    # Sampled colours: per-image seeds make a resumed run equal an uninterrupted one.
    # Batch 1: with other batch compositions the matmuls round differently (~1e-7),
    # which can move a draw across a bin edge at one pixel in thousands.
    run = dict(img_dir=str(tmp_path / "photos"), batch_size=1, mode="sample")
    cf.colorize_folder(pipeline, store_dir=str(tmp_path / "whole"), report=lambda line: None,
                       **run)
    store = tmp_path / "parts"
    with pytest.raises(Interrupted):
        cf.colorize_folder(pipeline, store_dir=str(store), report=interrupt_after(2), **run)
    assert len(_outputs(store, "fullres")) == 2
    # The expensive stage 1 of a half-done image is reused, not redone.
    os.remove(store / "fullres" / "cat.png")
    stage1_time = os.path.getmtime(store / "stage1" / "cat.png")
    done_time = os.path.getmtime(store / "fullres" / "gray16.png")
    (store / "fullres" / "wide_png.png.tmp.png").write_bytes(b"half a file")
    lines = []
    summary = cf.colorize_folder(pipeline, store_dir=str(store), report=lines.append, **run)
    assert lines[0].startswith("6 image(s)") and "1 already colorized, 5 to do" in lines[0]
    assert summary["reused_stage1"] == 1 and summary["resumed"] == 1
    assert os.path.getmtime(store / "stage1" / "cat.png") == stage1_time
    assert os.path.getmtime(store / "fullres" / "gray16.png") == done_time
    whole, parts = _pngs(tmp_path / "whole"), _pngs(store)
    assert sorted(whole) == sorted(parts) and len(whole) == len(cf.STAGE_DIRS) * 5
    for name in whole:
        np.testing.assert_array_equal(whole[name], parts[name], err_msg=name)

    with pytest.raises(cf.ColorizeError, match=r"num_samples: 1 then, 2 now.*--overwrite"):
        cf.colorize_folder(pipeline, store_dir=str(store), num_samples=2,
                           report=lambda line: None, **run)
    summary = cf.colorize_folder(pipeline, store_dir=str(store), num_samples=2, overwrite=True,
                                 report=lambda line: None, **run)
    assert len(summary["colorized"]) == 5 and summary["resumed"] == 0


def test_bad_inputs_name_the_problem(pipeline, models, tmp_path):
    with pytest.raises(cf.ColorizeError, match="is not a directory"):
        cf.colorize_folder(pipeline, str(tmp_path / "nowhere"), str(tmp_path / "out"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(cf.ColorizeError, match=r"no image files \(1 other file"):
        cf.colorize_folder(pipeline, str(tmp_path / "empty"), str(tmp_path / "out"))
    with pytest.raises(loading.StageError, match="holds a color_upsampler model"):
        loading.load_model(str(models / "color_upsampler"), stage="colorizer")
    with pytest.raises(loading.StageError, match="--spatial_upsampler=.*no such file"):
        loading.load_model(str(tmp_path / "missing"), stage="spatial_upsampler")
    with pytest.raises(loading.StageError, match="No checkpoint in directory"):
        loading.load_model(str(tmp_path / "empty"), stage="colorizer")
    broken = tmp_path / "only_broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"")
    result = run_command("coltran_tf.commands.colorize", f"--img_dir={broken}",
                         f"--store_dir={tmp_path / 'out'}", f"--checkpoints={models}")
    assert result.returncode == 1 and "a.png: ValueError: empty file" in result.stdout
    # One stage named, the others not: no silent mix with the demo weights.
    result = run_command("coltran_tf.commands.colorize", f"--img_dir={broken}",
                         f"--store_dir={tmp_path / 'out2'}", f"--colorizer={models / 'colorizer'}")
    assert result.returncode == 2 and "pass --checkpoints=DIR" in result.stderr
    assert "No model for the color_upsampler stage" in result.stderr


@pytest.mark.slow  # the oracle fixture test covers original checkpoints; -m slow runs it
def test_original_checkpoints_are_used_directly(tmp_path):
    require_fixtures("tiny", "coltran_core", "ckpt")
    release = tmp_path / "release"
    release.mkdir()
    configs = []
    for stage, fixture in (("colorizer", "coltran_core"), ("color_upsampler", "color_upsampler"),
                           ("spatial_upsampler", "spatial_upsampler")):
        os.symlink(os.path.join(REFERENCE_FIXTURES, "tiny", fixture, "ckpt"), release / stage)
        with open(os.path.join(REFERENCE_FIXTURES, "tiny", fixture, "layout.json")) as f:
            (tmp_path / f"{stage}.json").write_text(json.dumps(json.load(f)["config"]))
        configs.append(f"--{stage}_config={tmp_path / f'{stage}.json'}")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(os.path.join(REPO_ROOT, "data", "coffee.png")).resize((120, 80)).save(
        photos / "coffee.png")
    result = run_command("coltran_tf.commands.colorize", f"--img_dir={photos}",
                         f"--store_dir={tmp_path / 'out'}", f"--checkpoints={release}",
                         "--mode=argmax", *configs)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "original ColTran checkpoint" in result.stdout
    assert Image.open(tmp_path / "out" / "final" / "coffee.png").size == (256, 256)
    assert Image.open(tmp_path / "out" / "fullres" / "coffee.png").size == (120, 80)
    # Without the configs the paper-size models do not fit these small checkpoints.
    with pytest.raises(loading.StageError) as error:
        loading.load_model(str(release / "color_upsampler"), stage="color_upsampler")
    message = str(error.value)
    assert str(release / "color_upsampler") in message and "--color_upsampler_config" in message


def test_chroma_transfer_keeps_the_luminance():
    rng = np.random.default_rng(0)
    original = rng.integers(30, 220, (37, 53, 3)).astype(np.uint8)
    colored = rng.integers(60, 200, (16, 16, 3)).astype(np.uint8)
    result = apply_chroma(original, colored)
    assert result.shape == original.shape
    shift = luma(result.astype(np.float32)) - luma(original.astype(np.float32))
    inside = (result > 0).all(-1) & (result < 255).all(-1)
    assert np.abs(shift[inside]).max() <= 1.0
    gray = np.repeat(np.full((16, 16, 1), 128, np.uint8), 3, axis=-1)
    flat = apply_chroma(original, gray)  # no chroma -> the original's gray
    assert cf.is_grayscale(flat, tolerance=1)
    assert np.abs(flat[..., 0].astype(float) - luma(original.astype(np.float32))).max() <= 0.5


def test_output_names_and_grayscale_detection():
    assert cf.output_stems(["a.jpg", "a.PNG", "b/c.tif", "b.jpg"]) == {
        "a.jpg": "a_jpg", "a.PNG": "a_png", "b/c.tif": "b/c", "b.jpg": "b"}
    rng = np.random.default_rng(1)
    gray = np.repeat(rng.integers(0, 256, (50, 60, 1)), 3, axis=-1)
    noisy = np.clip(gray + rng.integers(-2, 3, gray.shape), 0, 255).astype(np.uint8)
    assert cf.is_grayscale(noisy)  # a grayscale JPEG saved as RGB
    sepia = np.clip(gray * np.array([1.0, 0.85, 0.6]), 0, 255).astype(np.uint8)
    assert not cf.is_grayscale(sepia)


@pytest.mark.slow  # a benchmark tool's run (~25 s); -m slow runs it
def test_benchmark_colorize_times_the_whole_pipeline():
    """tools/benchmark_colorize.py (the README's seconds per photo), in-process at tiny size."""
    import benchmark_colorize  # tools/ (conftest puts it on the path)
    lines = []
    result = benchmark_colorize.benchmark("tiny", photos=1, report=lines.append)
    assert result["photos"] == 1 and 0 < result["per_photo"] < result["first"] + 60
    assert lines[-1].startswith("colorize, tiny stages") and "s per photo" in lines[-1]
    assert sum("parameters (tiny)" in line for line in lines) == 3


@pytest.mark.slow  # a second colorize run, in bfloat16; -m slow runs it
def test_a_store_dir_is_not_finished_in_another_precision(models, tmp_path):
    """run.json records the precision; a half-finished float32 store_dir rerun in
    bfloat16 is refused, naming the setting and both values (exit 2)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(os.path.join(REPO_ROOT, "data", "camera.png")).resize((24, 24)).save(
        photos / "camera.png")
    common = (f"--img_dir={photos}", f"--store_dir={tmp_path / 'out'}",
              f"--checkpoints={models}", "--mode=argmax", "--sheet_rows=0")
    first = run_command("coltran_tf.commands.colorize", *common)
    assert first.returncode == 0, first.stderr
    with open(tmp_path / "out" / "run.json") as f:
        assert json.load(f)["precision"] == "float32"
    again = run_command("coltran_tf.commands.colorize", *common, "--precision=bfloat16")
    assert again.returncode == 2
    assert "precision: 'float32' then, 'bfloat16' now" in again.stderr, again.stderr


def test_progress_never_goes_quiet_for_long():
    """Heartbeat: the status line comes every `every` seconds while a call runs."""
    import time

    from coltran_tf.utils.progress import Heartbeat

    lines = []
    with Heartbeat(lines.append, lambda: "3/9 colorized | working on a.png", every=0.05):
        time.sleep(0.33)
    assert len(lines) >= 4 and all(line.startswith("3/9 colorized") for line in lines)
