"""Models as deployable artifacts: SavedModel, LiteRT and ONNX export, each
loaded back and run by its own runtime (deploy)."""
