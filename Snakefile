# dfrobust: how much do deepfake detectors lose under everyday video processing?
#
#   snakemake --cores all results/table1.csv        # workstation
#   snakemake --profile slurm results/table1.csv    # SLURM cluster
#
# The DAG: dataset indexes -> faces (dataset x quality x split x shard) ->
# train (model) / processed test copies (dataset x quality x operation x shard)
# -> scores (model x copy) -> metrics (model x test set x operation) ->
# results/table1.csv and results/tables/*. Config is validated at start
# (dfrobust.config); the run's plan is dfrobust.plan.

from snakemake.utils import min_version

min_version("9.0")


# The demo's config.yaml, unless config files are named (--configfile): those are
# the whole config (e.g. config/ffpp.yaml, then overlays such as
# config/protocols/bat.yaml), never laid over the demo's settings.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"



include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/faces.smk"
include: "rules/distort.smk"
include: "rules/train.smk"
include: "rules/score.smk"
include: "rules/report.smk"


rule all:
    """Table I with its figures, the other tables, the operations figure and the stage summaries."""
    input:
        "results/table1.csv",
        "results/figures/table1_heatmap.png",
        "results/figures/operations.png",
        "results/faces/summary.csv",
        "results/distorted/summary.csv",
        [f"results/tables/{name}.csv" for name in PLAN.tables],
    default_target: True
    localrule: True
