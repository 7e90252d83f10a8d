"""Training, evaluation and export of the ColTran models (the original's recipe:
RMSprop 3e-4, Polyak averaging 0.999, the three models trained independently)."""
