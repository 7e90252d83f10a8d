"""What a model family gives the export formats: a serving module.

The pattern of the TensorFlow Model Garden's ExportModule: a tf.Module whose
`serve` is a tf.function with an input signature (the inputs and outputs of
the artefact, documented with the module), and that knows its own example
inputs (what the exported artefact is checked on) and how close each output
must come to the Keras model's. The formats (serving/deploy.py: save, load,
run, compare) ask a module nothing else: they never route on its name.
"""

import numpy as np
import tensorflow as tf


class ServingModule(tf.Module):
    """Base of the families' serving modules.

    Subclasses define `serve` (a tf.function with an input_signature) and
    `example_inputs`; they may set:
      tolerances: output name -> the largest |difference| allowed;
      exact: integer outputs, checked by the share of equal values;
      extra_signatures: more names for `serve` in a SavedModel;
      litert_refusal: why the LiteRT converter cannot take it (None: it can).
    """

    tolerances: dict = {}
    exact: tuple = ()
    extra_signatures: tuple = ()
    litert_refusal: str | None = None

    def signatures(self) -> dict:
        """SavedModel signature name -> the function."""
        return {"serving_default": self.serve,
                **{name: self.serve for name in self.extra_signatures}}

    def input_names(self) -> list[str]:
        return [spec.name for spec in self.serve.input_signature]

    def example_inputs(self, seed: int = 0) -> dict:
        raise NotImplementedError

    def expected(self, inputs: dict) -> dict:
        """What the Keras model gives for `inputs` (NumPy)."""
        return {k: np.asarray(v) for k, v in self.serve(**inputs).items()}
