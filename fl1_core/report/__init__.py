"""The offline run report (``fl1 report RUN_DIR``): see :mod:`fl1_core.report.builder`."""

from .builder import REPORT_DIR, build_report, metric_files
from .notebook_html import NotebookHTML, notebook_fragment

__all__ = ["NotebookHTML", "REPORT_DIR", "build_report", "metric_files", "notebook_fragment"]
