"""The HTML report (``biasaudit report``): one self-contained page built from the result files of ``score`` and
``experiment`` alone."""
from .html import build_context, render, segments, write_report

__all__ = ["build_context", "render", "segments", "write_report"]
