"""FID, colourfulness and PSNR of colorized images (the `coltran-evaluate` command).

  coltran-evaluate --generated=colorized/final --reference=data --metrics=psnr,colorfulness
  coltran-evaluate --protocol=coltran_fid5k --generated=runs/spatial/samples \
      --tfds_data_dir=~/tensorflow_datasets --output=fid5k.json
  coltran-evaluate --protocol=ddcolor_val5k --generated=val5k_colorized \
      --tfds_data_dir=~/tensorflow_datasets

(`python -m coltran_tf.commands.evaluate` is the same command.)

--generated and --reference each take a folder of images, a staged-sampling
output folder of gen<N>.tfrecords (any stage; the records say their size and samples)
or a TFDS split, tfds:NAME[:SPLIT] (e.g. tfds:imagenet2012:validation[:5000]).
--protocol picks the reference set, the preprocessing and the metrics of a
published protocol (coltran_fid5k: ColTran's FID-5K, Table 2; ddcolor_val5k and
ddcolor_val50k: DDColor's tables); flags given explicitly override it.

FID uses the standard FID Inception (fetched once into the cache; see
--feature_extractor), with statistics streamed in float64. PSNR (uint8 RGB, MAX
255) pairs each generated image with the reference image of the same name
(folders, TFDS file names) or position (--pair_by). Colourfulness is Hasler and
Suesstrunk's; dCF = |CF(generated) - CF(reference)|. Prints a Markdown table;
--output writes the result as JSON.
"""

import os
import sys

from absl import app, flags

from coltran_tf.utils import cli

flags.DEFINE_string("generated", None, "Colorized images: a folder, a gen dir of TFRecords, "
                    "or tfds:NAME[:SPLIT].")
flags.DEFINE_string("reference", None, "Real images (the same kinds); default: the "
                    "--protocol's reference set.")
flags.DEFINE_enum("protocol", None, ["coltran_fid5k", "ddcolor_val5k", "ddcolor_val50k"],
                  "A published protocol: reference set, preprocessing, metrics.")
flags.DEFINE_list("metrics", None, "Of fid, colorfulness, psnr (default: the protocol's, "
                  "else all three).")
flags.DEFINE_string("feature_extractor", "inception", "FID features: 'inception' (the "
                    "standard FID Inception, fetched once into the cache), a path to its "
                    "classify_image_graph_def.pb, or a .keras model mapping float32 RGB in "
                    "[0, 255] to feature vectors.")
flags.DEFINE_enum("preprocess", None, ["none", "center_crop_256", "resize_256"],
                  "Applied to both sets (default: the protocol's, else none).")
flags.DEFINE_enum("pair_by", "auto", ["auto", "name", "index"], "PSNR pairs by file name "
                  "(auto where both sets have names) or by position.")
flags.DEFINE_integer("num_samples", None, "Samples per record of a gen dir (default: what "
                     "the records say; 1 for records of the original implementation).")
flags.DEFINE_string("tfds_data_dir", None, "TFDS data_dir for tfds: sets.")
flags.DEFINE_integer("batch_size", 50, "Images per feature-extractor call.")
flags.DEFINE_string("output", None, "Write the result as JSON here.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from coltran_tf.evaluation.evaluate import evaluate, markdown_table
    from coltran_tf.evaluation.features import FeatureError, load_feature_extractor
    from coltran_tf.evaluation.image_sets import EvaluationError, open_set
    from coltran_tf.evaluation.protocols import PROTOCOLS
    from coltran_tf.utils.download import FetchError
    from coltran_tf.utils.files import write_json

    f = flags.FLAGS
    protocol = PROTOCOLS[f.protocol] if f.protocol else None
    reference_spec = f.reference or (protocol.reference if protocol else None)
    if not f.generated or not reference_spec:
        print("Error: pass --generated and --reference (or a --protocol that names the "
              "reference set); see --help.", file=sys.stderr)
        return 2
    metrics = f.metrics or (list(protocol.metrics) if protocol else
                            ["fid", "colorfulness", "psnr"])
    preprocess = f.preprocess or (protocol.preprocess if protocol else "none")
    report = lambda line: print(line, flush=True)  # noqa: E731
    try:
        names = protocol.reference_names if protocol else None
        generated = open_set(f.generated, f.num_samples, f.tfds_data_dir, names)
        reference = open_set(reference_spec, 1, f.tfds_data_dir,
                             None if f.reference else names)
        report(f"generated: {generated.description}\nreference: {reference.description}")
        expected = protocol.expected_images if protocol else None
        if expected and generated.count is not None and generated.count != expected:
            report(f"Warning: {f.protocol} expects {expected} generated images "
                   f"({protocol.generated}); {f.generated} has {generated.count}, so the "
                   "numbers are not the protocol's.")
        extractor = (load_feature_extractor(f.feature_extractor, report)
                     if "fid" in metrics else None)
        result = evaluate(generated, reference, metrics, extractor, preprocess, f.pair_by,
                          f.batch_size, report)
    except (EvaluationError, FeatureError, FetchError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    result.update(protocol=f.protocol, preprocess=preprocess)
    for warning in result["warnings"]:
        print(f"Warning: {warning}", file=sys.stderr)
    if f.output:
        os.makedirs(os.path.dirname(os.path.abspath(f.output)), exist_ok=True)
        write_json(f.output, result)
    print(markdown_table(result), flush=True)
    return 0


run = cli.entry_point(main, __name__, "coltran-evaluate")


if __name__ == "__main__":
    run()
