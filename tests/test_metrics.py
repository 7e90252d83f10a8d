"""The one metrics registry (utils/metrics.py), as both evaluators use it."""

import ast
import os

import numpy as np
import pytest

from coltran_tf.utils import frechet, image_metrics, metrics
from conftest import REPO_ROOT


def test_psnr_averages_finite_values_and_counts_identical_pairs():
    psnr = metrics.create("psnr")
    a = np.full((4, 4, 3), 100.0)
    psnr.update(a, a)  # identical: infinite
    psnr.update(a + 2, a)
    psnr.update(a + 4, a)
    expected = np.mean([image_metrics.psnr(a + 2, a), image_metrics.psnr(a + 4, a)])
    assert psnr.result() == pytest.approx(expected)
    assert (psnr.count, psnr.nonfinite) == (3, 1)
    capped = metrics.create("psnr", max_value=1.0, mse_floor=1e-5)
    capped.update(a / 255, a / 255)
    assert capped.result() == pytest.approx(50.0)


def test_fid_streams_batches_into_the_moments_of_each_set():
    class Extractor:
        size, name = None, "mean colour"

        def __call__(self, batch):
            return batch.reshape(len(batch), -1, 3).mean(axis=1)

    rng = np.random.default_rng(0)
    generated = [rng.uniform(0, 255, (8, 8, 3)) for _ in range(7)]
    reference = [rng.uniform(50, 200, (8, 8, 3)) for _ in range(6)]
    fid = metrics.create("fid", extractor=Extractor(), batch_size=3)
    for g in generated:
        fid.update(generated=g)
    for r in reference:
        fid.update(reference=r)
    moments = {}
    for label, images in (("g", generated), ("r", reference)):
        moments[label] = frechet.RunningMoments()
        moments[label].update(Extractor()(np.stack(images)))
    assert fid.result() == pytest.approx(frechet.fid_from_moments(moments["g"], moments["r"]),
                                         rel=1e-5)


def test_unknown_metrics_name_the_registry():
    with pytest.raises(ValueError, match="psnr, b-psnr, pev, colorfulness, lpips, fid"):
        metrics.create("ssim")


@pytest.mark.parametrize("module", ["coltran_tf/evaluation/evaluate.py",
                                    "coltran_tf/icolorit/metrics.py"])
def test_both_evaluators_take_their_metrics_from_the_registry(module):
    """Each evaluator creates its metrics by name and computes none itself."""
    with open(os.path.join(REPO_ROOT, module)) as f:
        tree = ast.parse(f.read())
    calls = {node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute)}
    assert "create" in calls
    assert not calls & {"psnr", "colorfulness", "fid_from_moments", "psnr_from_mse"}
