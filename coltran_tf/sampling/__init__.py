"""Sampling from the ColTran models: the cached sampler (`cached_sampler`),
the original algorithm (`colorizer_sampler`), the `Pipeline` that chains the
stages, staged jobs writing TFRecords (`staged`, `records`) and folder
colorization (`colorize_folder`)."""
