"""Training, evaluation and export of the ColTran models (spec COLTRAN.md §7)."""
