"""Figures (matplotlib, Agg) and the self-contained HTML report. No metric is computed here."""

from .figures import FIGURES, FigureData, FigureRecord, FigureSkipped, write_figures
from .html import render_html

__all__ = [
    "FIGURES",
    "FigureData",
    "FigureRecord",
    "FigureSkipped",
    "render_html",
    "write_figures",
]
