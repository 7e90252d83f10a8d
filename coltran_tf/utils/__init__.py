"""Small numeric helpers shared by the models, the data pipeline and the tools."""
