"""float32 vs bfloat16 (mixed precision), side by side in one run: speed and fidelity.

  python tools/benchmark_precision.py                  # all but training (~20 min, 2 cores)
  python tools/benchmark_precision.py --parts=fidelity,icolorit
  python tools/benchmark_precision.py --parts=training --train_fraction=0.1

Every comparison uses the same weights both ways (built once in float32, copied
into the bfloat16 model; paper-size models get random weights of the released
shapes, as in benchmark_colorize.py). Parts (--parts):

  fidelity   bits/dim on data/ of the demo weights and of random paper-size
             weights, the colorizer's teacher-forced argmax agreement, both
             upsamplers' argmax agreement, and the PSNR between the float32 and
             bfloat16 colorize outputs of data/ (demo weights, argmax mode);
  spatial    the paper spatial upsampler on one 256x256 image (3 channels, argmax);
  sampler    the cached sampler at paper size, --batch_sizes (median of --repeats);
  colorize   the whole colorize pipeline per photo with paper-size stages;
  icolorit   iColoriT-T/S/B latency on one 224x224 input (median of --repeats);
  training   the demo configs trained from the same seed for the same number of
             steps both ways (--train_fraction of the demo weights' steps), then
             bits/dim on data/'s valid split of the exported weights, evaluated
             in float32 (and iColoriT-demo's final training loss); not in the
             default parts.

Each timing is after a warm-up call (tracing, compilation); the ratio is
float32 time / bfloat16 time, measured in the same run.
"""

import os
import shutil
import tempfile
import time

import _paths  # noqa: F401
import numpy as np
from _timing import machine, median_ms
from absl import app, flags

PARTS = ("fidelity", "spatial", "sampler", "colorize", "icolorit", "training")
DEFAULT_PARTS = PARTS[:-1]


def _define_flags():
    flags.DEFINE_list("parts", list(DEFAULT_PARTS), f"Which of {list(PARTS)} to run.")
    flags.DEFINE_list("batch_sizes", ["1", "20"], "Cached sampler batch sizes.")
    flags.DEFINE_integer("repeats", 3, "Timed calls of the quick measurements (median).")
    flags.DEFINE_integer("photos", 2, "Photos timed per precision in the colorize part.")
    flags.DEFINE_float("train_fraction", 0.1, "training: share of the demo weights' steps "
                       "trained both ways (1 = as long as the bundled demo weights).")


def _models(stage: str, variant: str):
    """{precision: model} with identical weights (float32 built first)."""
    import keras

    from coltran_tf.configs import get_preset
    from coltran_tf.models.builder import build_model

    keras.utils.set_random_seed(0)
    config = get_preset(stage, variant)
    models = {p: build_model(config, p) for p in ("float32", "bfloat16")}
    models["bfloat16"].set_weights(models["float32"].get_weights())
    return models, config


def _demo_models(stage: str):
    from coltran_tf.checkpoints.loading import load_model
    from coltran_tf.demo import coltran_dir

    path = os.path.join(coltran_dir(), stage)
    return {p: load_model(path, stage=stage, precision=p)[0] for p in ("float32", "bfloat16")}


def _timed(fn, repeats: int) -> float:
    """Median seconds of fn() after one warm-up call."""
    return median_ms(fn, repeats, warmups=1) / 1000


def _row(report, label: str, f32: float, bf16: float, unit: str = "s") -> None:
    report(f"{label:<52}{f32:>10.3f}{bf16:>10.3f}{f32 / bf16:>8.2f}x  ({unit})")


def _bundled_batches(config, count: int):
    from coltran_tf.data import datasets

    config = config.copy_and_resolve_references()
    config.dataset = "bundled"
    dataset = datasets.get_dataset(config, "train", 4, training=False, num_examples=count)
    return list(dataset.take(max(1, count // 4)))


def fidelity(report) -> None:
    from coltran_tf.configs import get_preset
    from coltran_tf.sampling.colorize_folder import colorize_folder
    from coltran_tf.sampling.pipeline import Pipeline

    report(f"{'fidelity (same weights)':<52}{'float32':>10}{'bfloat16':>10}")
    for source in ("demo", "paper"):
        for stage in ("colorizer", "color_upsampler", "spatial_upsampler"):
            if source == "demo":
                models = _demo_models(stage)
                config = get_preset(stage, "demo")
            else:
                models, config = _models(stage, "")
            batches = _bundled_batches(config, 4 if source == "paper" else 12)
            bits, agree, total = {p: [] for p in models}, 0, 0
            for batch in batches:
                logits = {}
                for p, model in models.items():
                    outputs = model.compute_outputs(batch)
                    bits[p].append(float(model.batch_loss(batch, outputs)["loss_bits_per_dim"]))
                    logits[p] = np.asarray(outputs["logits"])
                agree += (logits["float32"].argmax(-1) == logits["bfloat16"].argmax(-1)).sum()
                total += logits["float32"][..., 0].size
            f32, bf16 = np.mean(bits["float32"]), np.mean(bits["bfloat16"])
            report(f"{source + ' ' + stage + ' bits/dim on data/':<52}{f32:>10.4f}{bf16:>10.4f}"
                   f"  ({100 * (bf16 - f32) / f32:+.2f}%)")
            kind = "teacher-forced argmax" if stage == "colorizer" else "argmax"
            report(f"{source + ' ' + stage + ' ' + kind + ' agreement':<52}"
                   f"{100 * agree / total:>19.2f}%  ({total} values)")
    root = tempfile.mkdtemp(prefix="benchmark_precision-")
    try:
        outputs = {}
        for p in ("float32", "bfloat16"):
            models = [_demo_models(s)[p] for s in ("colorizer", "color_upsampler",
                                                    "spatial_upsampler")]
            out = os.path.join(root, p)
            colorize_folder(Pipeline(*models), os.path.join(_paths.REPO_ROOT, "data"), out,
                            mode="argmax", sheet_rows=0, report=lambda line: None)
            outputs[p] = out
        psnrs = []
        from PIL import Image
        for name in sorted(os.listdir(os.path.join(outputs["float32"], "fullres"))):
            a, b = (np.asarray(Image.open(os.path.join(outputs[p], "fullres", name)), np.float64)
                    for p in ("float32", "bfloat16"))
            mse = np.mean((a - b) ** 2)
            psnrs.append(np.inf if mse == 0 else 10 * np.log10(255.0**2 / mse))
        finite = [x for x in psnrs if np.isfinite(x)]
        report(f"{'colorize data/ (demo, argmax) PSNR f32 vs bf16':<52}"
               f"{np.mean(finite) if finite else np.inf:>16.1f} dB mean, "
               f"{min(psnrs):.1f} dB min, {len(psnrs) - len(finite)}/{len(psnrs)} identical")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def spatial(report) -> None:
    models, _ = _models("spatial_upsampler", "")
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (1, 256, 256, 1))
    channels = rng.integers(0, 256, (1, 256, 256, 3))
    times = {p: _timed(lambda m=m: m.sample_channels(gray, channels), 1)
             for p, m in models.items()}
    _row(report, "paper spatial upsampler, one 256x256 image", times["float32"],
         times["bfloat16"], "s per image")


def sampler(report) -> None:
    from coltran_tf.sampling.cached_sampler import sample_colorizer_cached

    models, _ = _models("colorizer", "")
    for batch in (int(b) for b in flags.FLAGS.batch_sizes):
        gray = np.random.default_rng(0).integers(0, 256, (batch, 64, 64, 1))
        repeats = flags.FLAGS.repeats if batch == 1 else 1
        times = {p: _timed(lambda m=m, g=gray: sample_colorizer_cached(m, g, seeds=0),
                           repeats) / batch for p, m in models.items()}
        _row(report, f"paper cached sampler, batch {batch}", times["float32"],
             times["bfloat16"], "s per image")


def colorize(report) -> None:
    import benchmark_colorize

    per_photo = {}
    for p in ("float32", "bfloat16"):
        result = benchmark_colorize.benchmark("paper", flags.FLAGS.photos, report=lambda line: None,
                                              precision=p)
        per_photo[p] = result["per_photo"]
    _row(report, "colorize, paper stages, batch 1, per photo", per_photo["float32"],
         per_photo["bfloat16"], "s per photo")


def icolorit(report) -> None:
    import keras
    import tensorflow as tf

    from coltran_tf.icolorit.model import build_icolorit

    x = np.random.default_rng(0).normal(size=(1, 224, 224, 4)).astype(np.float32)
    for size in ("T", "S", "B"):
        keras.utils.set_random_seed(0)
        models = {p: build_icolorit(size, p) for p in ("float32", "bfloat16")}
        models["bfloat16"].set_weights(models["float32"].get_weights())
        times = {}
        for p, model in models.items():
            forward = tf.function(lambda t, m=model: m(t))
            times[p] = _timed(lambda f=forward: np.asarray(f(x)), flags.FLAGS.repeats) * 1000
        _row(report, f"iColoriT-{size} latency, one 224x224 input", times["float32"],
             times["bfloat16"], "ms")


def training(report) -> None:
    from coltran_tf.configs import get_preset
    from coltran_tf.icolorit.training import train as train_icolorit
    from coltran_tf.train import evaluator, trainer

    fraction = flags.FLAGS.train_fraction
    report(f"{'demo configs, same seed and steps':<52}{'float32':>10}{'bfloat16':>10}")
    root = tempfile.mkdtemp(prefix="benchmark_precision-train-")
    try:
        for stage in ("colorizer", "color_upsampler", "spatial_upsampler"):
            bits, seconds = {}, {}
            for p in ("float32", "bfloat16"):
                config = get_preset(stage, "demo")
                steps = max(1, round(fraction * int(config.max_train_steps)))
                config.max_train_steps, config.precision = steps, p
                logdir = os.path.join(root, stage, p)
                print(f"  training {stage} in {p} for {steps} steps ...", flush=True)
                start = time.perf_counter()
                summary = trainer.train(config, logdir, report=lambda line: None,
                                        steps_per_summaries=max(1, steps // 4))
                seconds[p] = time.perf_counter() - start
                # The trained weights as the demo exports them (config.export_weights),
                # both evaluated in float32.
                config.precision = "float32"
                (result,) = evaluator.evaluate(config, os.path.join(logdir, "eval"), "valid",
                                               checkpoint=summary["export_dir"],
                                               report=lambda line: None)
                bits[p] = result["loss_bits_per_dim"]
            f32, bf16 = bits["float32"], bits["bfloat16"]
            report(f"{f'{stage}, {steps} steps: valid bits/dim':<52}{f32:>10.4f}{bf16:>10.4f}"
                   f"  ({100 * (bf16 - f32) / f32:+.2f}%; trained in {seconds['float32']:.0f}"
                   f" s vs {seconds['bfloat16']:.0f} s)")
        losses = {}
        for p in ("float32", "bfloat16"):
            config = get_preset("icolorit", "demo")
            steps = max(1, round(fraction * int(config.max_train_steps)))
            config.max_train_steps, config.precision = steps, p
            config.steps_per_log = max(1, steps // 10)
            logged = train_icolorit(config, os.path.join(root, "icolorit", p))
            last = sorted(logged)[-3:]  # the mean of the last logged losses
            losses[p] = float(np.mean([logged[s] for s in last]))
        f32, bf16 = losses["float32"], losses["bfloat16"]
        report(f"{f'icolorit, {steps} steps: final training loss':<52}{f32:>10.5f}{bf16:>10.5f}"
               f"  ({100 * (bf16 - f32) / f32:+.2f}%)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv):
    del argv
    report = lambda line: print(line, flush=True)  # noqa: E731
    for part in flags.FLAGS.parts:
        if part not in PARTS:
            raise app.UsageError(f"--parts: unknown {part!r}; choose from {list(PARTS)}.")
    report(f"{machine()}; float32 vs bfloat16 (mixed precision), same weights")
    report(f"{'measurement':<52}{'float32':>10}{'bfloat16':>10}{'ratio':>9}")
    for part in flags.FLAGS.parts:
        globals()[part](report)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
