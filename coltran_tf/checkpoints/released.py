"""The released ColTran checkpoints by name: fetched once, checked, converted, cached.

`released` names the authors' archive (RELEASED_URL, the file their Colab
downloads); any http(s)://...zip (a mirror) or gs:// path to an archive of the
same layout works the same way. The archive holds `colorizer/`,
`color_upsampler/` and `spatial_upsampler/` (under one top folder, `coltran/`
in the release), each an original TF checkpoint directory (its `checkpoint`
state file, the weights, RMSprop slots and the EMA shadows).

On first use the archive is downloaded (progress line), checked (zip
integrity, the three stage folders), extracted, and each stage converted once
(EMA weights, the converter's strict key check) into a model directory of
ours with metadata.json naming the URL and the archive's sha256. The entry is
published atomically into `<cache_home()>/released/`; later runs load the
converted weights with no network and no conversion.
"""

import os
import shutil
import zipfile

from coltran_tf.checkpoints.native import CONFIG_FILE, save_model_dir
from coltran_tf.checkpoints.reference import ReferenceCheckpointMismatch, load_reference_checkpoint
from coltran_tf.configs import STAGES, load_config, stages
from coltran_tf.models.builder import build_model, model_kwargs
from coltran_tf.utils.download import fetch_cached, is_url

RELEASED = "released"
RELEASED_URL = "https://storage.googleapis.com/gresearch/coltran/coltran.zip"
CACHE_KIND = "released"


class ArchiveError(ValueError):
    """An archive that is not a complete zip of the three stage checkpoints."""


def is_remote(spec: str | None) -> bool:
    """True for `released[:STAGE]` and URL[:STAGE] specs."""
    return bool(spec) and (spec.split(":")[0] == RELEASED or is_url(spec))


def parse_remote(spec: str) -> tuple[str, str | None]:
    """'released[:STAGE]' or 'URL[:STAGE]' -> (URL, STAGE or None)."""
    base, _, suffix = spec.rpartition(":")
    if suffix in STAGES and base:
        spec, stage = base, suffix
    else:
        stage = None
    if spec == RELEASED:
        return RELEASED_URL, stage
    if not is_url(spec):
        raise ValueError(f"{spec!r}: expected 'released', 'released:STAGE' or an http(s):// "
                         f"or gs:// URL of a zip, optionally with ':STAGE' (STAGE one of "
                         f"{', '.join(STAGES)}).")
    return spec, stage


def manual_steps(url: str) -> str:
    return (f"To do it by hand: download {url}, unzip it, and pass the folder that holds "
            "colorizer/, color_upsampler/ and spatial_upsampler/ as --checkpoints=DIR "
            "(colorize; the app's --coltran_dir) or DIR/colorizer as --checkpoint (sample, "
            "train/eval).")


def _stage_folders(archive: zipfile.ZipFile) -> dict:
    """STAGE -> its folder inside the archive ('coltran/colorizer/')."""
    found = {}
    for name in archive.namelist():
        parts = name.split("/")
        if parts[-1] == "checkpoint" and len(parts) >= 2 and parts[-2] in STAGES:
            found.setdefault(parts[-2], "/".join(parts[:-1]) + "/")
    missing = [stage for stage in STAGES if stage not in found]
    if missing:
        raise ArchiveError(
            f"the archive has no checkpoint folder for {', '.join(missing)} (expected "
            "colorizer/, color_upsampler/ and spatial_upsampler/, each with its "
            f"'checkpoint' file; found {sorted(found) or 'none'})")
    return found


def _extract(archive: zipfile.ZipFile, folder: str, target: str) -> None:
    """The files directly in `folder` of the archive, into `target`."""
    os.makedirs(target)
    for info in archive.infolist():
        if info.is_dir() or not info.filename.startswith(folder):
            continue
        name = info.filename[len(folder):]
        if "/" in name or name in ("", ".", ".."):
            continue  # checkpoints are flat; nothing else is needed
        with archive.open(info) as source, open(os.path.join(target, name), "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)


def _prepare(configs: dict, report):
    def prepare(download: str, staging: str, info: dict) -> None:
        if not zipfile.is_zipfile(download):
            raise ArchiveError("the download is not a zip archive (truncated or corrupt)")
        try:
            with zipfile.ZipFile(download) as archive:
                bad = archive.testzip()
                if bad is not None:
                    raise ArchiveError(f"the archive is corrupt ({bad} fails its CRC check)")
                folders = _stage_folders(archive)
                originals = os.path.join(staging, ".original")
                for stage in STAGES:
                    _extract(archive, folders[stage], os.path.join(originals, stage))
        except (zipfile.BadZipFile, EOFError) as error:
            raise ArchiveError(f"the archive is corrupt or truncated ({error})") from None
        for stage in STAGES:
            report(f"Converting {stage} ({folders[stage]}) ...")
            model = build_model(configs[stage])
            try:
                summary = load_reference_checkpoint(model, os.path.join(originals, stage),
                                                    use_ema=True)
            except ReferenceCheckpointMismatch as error:
                raise ArchiveError(
                    f"its {stage} checkpoint does not fit the {stage} config (if it is "
                    f"another size, pass that config with --{stage}_config):\n{error}"
                ) from None
            metadata = {"source": info["url"], "archive_sha256": info["sha256"],
                        "archive_bytes": info["bytes"], "archive_folder": folders[stage],
                        "checkpoint": os.path.basename(summary["checkpoint"]),
                        "weights": "ema"}
            save_model_dir(model, configs[stage], os.path.join(staging, stage), metadata)
        shutil.rmtree(originals)
    return prepare


def _check_cached(entry: str, stage: str, config) -> None:
    """A cached stage converted with another model config cannot serve `config`."""
    import json

    with open(os.path.join(entry, stage, CONFIG_FILE)) as f:
        cached = json.load(f)
    if model_kwargs(cached) != model_kwargs(config):
        raise ValueError(
            f"{entry}/{stage} was converted with another model config than the one asked "
            f"for now. Remove {entry} to convert the archive again with the new config, or "
            f"drop the --*config flag to use the cached one.")


def _stage_config(stage: str, value):
    if value is None:
        return load_config(stage)  # the stage's paper preset
    return load_config(value, stage) if isinstance(value, str) else value


def fetch_released(spec: str, config_specs: dict | None = None, report=print) -> str:
    """The cache directory holding the three converted stages of `spec`.

    Args:
      spec: 'released', or an http(s)://... / gs://... zip URL (a ':STAGE'
        suffix is allowed and ignored here).
      config_specs: STAGE -> config spec (FILE[:variant], a preset or bare
        variants; see coltran_tf.configs.load_config) or a ConfigDict; stages
        not named use their paper preset. Checked against a cached entry.
      report: progress lines go here.

    Raises:
      FetchError (exit 2 in the commands) naming the URL, the cache path and
      the manual alternative: no network, HTTP errors, a truncated or corrupt
      archive, checkpoints that do not fit the configs (the converter's list of
      keys). Nothing is left in the cache then.
    """
    url, _ = parse_remote(spec)
    given = {stage: value for stage, value in (config_specs or {}).items() if value}
    configs = {stage: _stage_config(stage, given.get(stage)) for stage in STAGES}
    entry = fetch_cached(url, CACHE_KIND, _prepare(configs, report), manual_steps(url), report)
    for stage in given:
        _check_cached(entry, stage, configs[stage])
    return entry


def released_stage_dir(spec: str, stage: str, config=None, report=print) -> str:
    """The cached model directory of one stage ('released:colorizer', or 'released'
    with `stage` known from the experiment config)."""
    _, named = parse_remote(spec)
    if named and named != stage:
        raise ValueError(f"{spec!r} names the {named} stage, but this config builds a "
                         f"{stage}; use ':{stage}' or the {named}'s config.")
    entry = fetch_released(spec, {stage: config} if config is not None else None, report)
    return os.path.join(entry, stage)


def resolve_checkpoint(spec: str | None, config, report=print) -> str | None:
    """`--checkpoint` of sample and eval: a remote spec becomes the cached model
    directory of the stage that `config` builds, 'demo' (or 'demo:STAGE') the
    bundled demo model of that stage; anything else is returned as is."""
    from coltran_tf import demo

    if not is_remote(spec) and not demo.is_demo(spec):
        return spec
    stage = stages.of_model_name(config.model.name).name
    if demo.is_demo(spec):
        return demo.resolve(spec, stage)
    return released_stage_dir(spec, stage, config, report)
