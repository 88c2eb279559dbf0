"""Figures (matplotlib, Agg), stamp galleries (the one stamp renderer) and the self-contained HTML
report. No metric is computed here."""

from ..render import render_triplet, render_triplet_png
from .figures import FIGURES, FigureData, FigureRecord, FigureSkipped, write_figures
from .html import render_html

__all__ = [
    "FIGURES",
    "FigureData",
    "FigureRecord",
    "FigureSkipped",
    "render_html",
    "render_triplet",
    "render_triplet_png",
    "write_figures",
]
