"""Evaluation: metrics (purity, completeness, thresholds, intervals) and the report of a run."""
