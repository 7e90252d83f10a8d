"""Input pipelines: decoding, the original preprocessing, datasets."""
