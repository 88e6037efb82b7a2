"""Table I (csv/md/tex), its intervals, figures, and tracing a cell back to its inputs."""

from dfrobust.reporting.tables import (
    build_ci_table,
    build_table1,
    load_records,
    operation_order,
    pairwise_delong,
    read_table1,
    score_files,
    table1_csv,
    table1_latex,
    table1_markdown,
    write_pairwise_delong,
    write_table1,
)
from dfrobust.reporting.trace import format_trace, trace_cell

__all__ = [
    "build_ci_table",
    "build_table1",
    "format_trace",
    "load_records",
    "operation_order",
    "pairwise_delong",
    "read_table1",
    "score_files",
    "table1_csv",
    "table1_latex",
    "table1_markdown",
    "trace_cell",
    "write_pairwise_delong",
    "write_table1",
]
