# dfrobust: how much do deepfake detectors lose under everyday video processing?
#
#   snakemake --cores all results/table1.csv        # workstation
#   snakemake --profile slurm results/table1.csv    # SLURM cluster
#
# The DAG: dataset index -> faces (quality x split x shard) -> train (method x
# quality) / distorted test copies (operation x shard) -> scores -> metrics ->
# results/table1.csv. Config is validated against src/dfrobust/core/schema/ at start.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/faces.smk"
include: "rules/distort.smk"
include: "rules/train.smk"
include: "rules/score.smk"
include: "rules/report.smk"


rule all:
    """Table I with its figures, the operations figure and the stage summaries."""
    input:
        "results/table1.csv",
        "results/figures/table1_heatmap.png",
        "results/figures/operations.png",
        "results/faces/summary.csv",
        "results/distorted/summary.csv",
    default_target: True
    localrule: True
