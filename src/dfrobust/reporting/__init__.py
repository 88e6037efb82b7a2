"""Every table (csv/md/tex, intervals), pairwise DeLong tests, figures, and tracing a cell."""

from dfrobust.reporting.comparisons import pairwise_delong, write_pairwise_delong
from dfrobust.reporting.tables import build_table, ci_table, layout, metric_label, read_table, write_table
from dfrobust.reporting.trace import format_trace, trace_cell

__all__ = ["build_table", "ci_table", "format_trace", "layout", "metric_label", "pairwise_delong", "read_table",
           "trace_cell", "write_pairwise_delong", "write_table"]
