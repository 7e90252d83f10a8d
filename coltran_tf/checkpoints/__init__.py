"""Checkpoint I/O: the original ColTran's checkpoints and our own format."""
