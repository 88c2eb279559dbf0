"""Workflows: the only code that opens files and chains steps (score, evaluate, fit, Dask, demo)."""
