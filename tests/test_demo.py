"""The bundled demo weights and the README's first command (its colorize part).

The README's first command colorizes data/ with the demo weights; here the
same command runs on two bundled photos (one grayscale, one colour).
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from coltran_tf import demo
from coltran_tf.icolorit.convert import load_icolorit
from coltran_tf.icolorit.evaluation import load_ground_truth, psnr_by_hint_count
from coltran_tf.icolorit.inference import colorize as icolorit_colorize
from coltran_tf.icolorit.model import PRESETS
from coltran_tf.sampling import colorize_folder as cf
from coltran_tf.utils.image_metrics import colorfulness
from conftest import REPO_ROOT, run_command

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
PHOTOS = ("camera.png", "chelsea.png")  # grayscale 512x512, colour 451x300
HELD_OUT = ("china.jpg", "rocket.jpg")  # not in the demo iColoriT's training set
GRAYSCALE = ("brick.png", "camera.png", "clock_motion.png", "grass.png", "gravel.png",
             "microaneurysms.png")
HINT_FREE_COLOURFULNESS = 57.4  # the previous demo's mean on GRAYSCALE


def _readme_first_command() -> str:
    with open(os.path.join(REPO_ROOT, "README.md")) as f:
        text = f.read()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return block.strip()


def test_demo_weights_are_small():
    """Sizes and training curves from the manifest. That the weights load is
    shown where they are used: ColTran's three stages in
    test_readme_first_command_colorizes_bundled_photos, iColoriT-T in
    test_demo_icolorit_loads_and_follows_a_hint (loading them twice cost ~12 s)."""
    with open(os.path.join(demo.DEMO_DIR, "manifest.json")) as f:
        manifest = json.load(f)
    assert set(manifest["models"]) == {*demo.COLTRAN_STAGES, "icolorit"}
    for stage in demo.COLTRAN_STAGES:
        assert os.path.isdir(os.path.join(demo.coltran_dir(), stage))
        assert manifest["models"][stage]["bytes"] < 4 * 2**20
        # Training lowered the loss (the curves are committed beside the weights).
        entry = manifest["models"][stage]
        assert entry["final_loss_bits_per_dim"] < entry["first_loss_bits_per_dim"]
    assert manifest["models"]["icolorit"]["bytes"] < 14 * 2**20  # float16


def test_demo_icolorit_loads_and_follows_a_hint():
    """iColoriT-T loads; a red hint on the cat's fur makes that region redder
    than without hints; on held-out photos hints raise PSNR as stated."""
    rgb = np.asarray(Image.open(os.path.join(REPO_ROOT, "data", "chelsea.png")).convert("RGB"))
    model = load_icolorit(demo.icolorit_dir())
    assert model.count_params() == 6_444_740  # iColoriT-T
    assert PRESETS["T"]["hidden_size"] == model.hidden_size
    plain = icolorit_colorize(model, rgb, []).astype(np.float32)
    hinted = icolorit_colorize(model, rgb, [(150, 100, [220, 30, 30]), (160, 110, [220, 30, 30])]
                               ).astype(np.float32)
    region = (slice(135, 175), slice(85, 125))

    def redness(image):
        return (image[region][..., 0] - image[region][..., 1:].mean(-1)).mean()

    assert redness(hinted) > redness(plain) + 10
    # The paper's protocol on photos the demo never trained on (held out by
    # tools/make_hint_training_set.py): hints at random cells with the true colour
    # raise PSNR by the targets coltran_tf/demo/README.md states.
    truths = np.stack([load_ground_truth(os.path.join(REPO_ROOT, "data", name))
                       for name in HELD_OUT])
    psnr = psnr_by_hint_count(model, truths, [0, 10, 100], draws=2, seed=0)
    assert psnr[10] - psnr[0] >= 1.5 and psnr[100] - psnr[0] >= 4.0, psnr
    # Without hints, data/'s grayscale photos get colours: mean colourfulness at
    # least the previous (memorising) demo's HINT_FREE_COLOURFULNESS.
    scores = []
    for name in GRAYSCALE:
        grey = np.asarray(Image.open(os.path.join(REPO_ROOT, "data", name)).convert("RGB"))
        scores.append(colorfulness(icolorit_colorize(model, grey, []).astype(np.float64)))
    assert np.mean(scores) >= HINT_FREE_COLOURFULNESS, dict(zip(GRAYSCALE, scores))


def test_readme_first_command_colorizes_bundled_photos(tmp_path, monkeypatch):
    """The README's first command on the bundled photos with the demo weights
    (which shows that the three demo stages load). Every image is written under
    a temporary name and renamed into place, so an interrupted run never leaves
    a half-written output."""
    command = _readme_first_command()
    assert command.startswith("pip install -r requirements.txt")
    colorize_part = command.split("&& ", 3)[-1]
    assert colorize_part.startswith("coltran-colorize --img_dir=data ")
    images = tmp_path / "photos"
    images.mkdir()
    for name in PHOTOS:
        shutil.copy(os.path.join(REPO_ROOT, "data", name), images / name)
    store = tmp_path / "out"
    args = colorize_part.split()[1:]
    args = [a for a in args if not a.startswith(("--img_dir", "--store_dir"))]
    # The console script the install made; its main runs here, in this process.
    assert shutil.which("coltran-colorize"), "not on PATH: pip install --no-deps -e ."
    saved, replaced = [], []
    original_save, original_replace = Image.Image.save, os.replace
    monkeypatch.setattr(Image.Image, "save",
                        lambda self, fp, *a, **k: (saved.append(str(fp)),
                                                   original_save(self, fp, *a, **k))[1])
    monkeypatch.setattr(os, "replace",
                        lambda src, dst: (replaced.append(str(dst)), original_replace(src, dst))[1])
    result = run_command("coltran_tf.commands.colorize", *args, f"--img_dir={images}",
                         f"--store_dir={store}")
    monkeypatch.undo()
    assert result.returncode == 0, result.stderr[-3000:]
    pngs = [os.path.join(r, n) for r, _, names in os.walk(store) for n in names
            if n.endswith(".png")]
    assert saved and all(".tmp" in path for path in saved if path.endswith(".png"))
    assert sorted(pngs) == sorted(p for p in replaced if p.endswith(".png"))
    assert "demo weights" in result.stdout
    num_samples = int(next((a.split("=")[1] for a in args if a.startswith("--num_samples")), 1))
    for name in PHOTOS:
        with Image.open(images / name) as source:
            size = source.size
        stem = os.path.splitext(name)[0]
        for k in range(num_samples):
            suffix = f"_s{k}" if num_samples > 1 else ""
            with Image.open(store / "fullres" / f"{stem}{suffix}.png") as out:
                assert out.size == size and out.mode == "RGB"
                assert not cf.is_grayscale(np.asarray(out)), f"{name} came out grayscale"
            with Image.open(store / "uncertainty" / f"{stem}{suffix}.png") as unc:
                assert unc.size == (64, 64)
    assert (store / "contact_sheet.png").exists()
    leftovers = [os.path.join(r, n) for r, _, names in os.walk(store) for n in names
                 if ".tmp" in n]
    assert not leftovers


@pytest.mark.parametrize("flag", ["--checkpoints", "--icolorit_weights"])
def test_missing_demo_weights_give_a_clear_error(flag, tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DEMO_DIR", str(tmp_path))
    getter = demo.coltran_dir if flag == "--checkpoints" else demo.icolorit_dir
    with pytest.raises(demo.DemoWeightsMissing, match="train_demo_weights.sh"):
        getter()


def test_app_starts_with_the_demo_weights_by_default():
    """`python -m coltran_tf.commands.app` with no flags: demo iColoriT-T and demo ColTran."""
    import urllib.request

    process = subprocess.Popen([sys.executable, "-m", "coltran_tf.commands.app", "--port=0"],
                               cwd=REPO_ROOT, env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Serving on "):
                break
        assert lines and lines[-1].startswith("Serving on http://127.0.0.1:"), lines
        url = lines[-1].split()[2].rstrip("/")
        with urllib.request.urlopen(url + "/api/info") as response:
            info = json.loads(response.read())
        assert info["model"] == "demo" and info["coltran"] == "demo"  # names, not paths
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_app_names_released_weights_it_cannot_fetch(tmp_path, monkeypatch):
    """--coltran_dir takes 'released' or an archive URL; a failed fetch exits 2."""
    monkeypatch.setenv("COLTRAN_TF_HOME", str(tmp_path))
    result = run_command("coltran_tf.commands.app",
                         "--coltran_dir=http://127.0.0.1:9/coltran.zip")
    assert result.returncode == 2
    assert "cannot reach http://127.0.0.1:9/coltran.zip" in result.stderr
    assert "nothing was kept" in result.stderr
