"""The test-copy stage (rules/distort.smk): every operation applied to whole
copies of the test videos (copy.py), and the figure showing them (figure.py)."""

from dfrobust.stages.distort.copy import base_videos, distort_shard, summarise_distorted
from dfrobust.stages.distort.figure import operations_figure

__all__ = ["base_videos", "distort_shard", "operations_figure", "summarise_distorted"]
