# dfrobust: how much do deepfake detectors lose under everyday video processing?
#
#   snakemake --cores all results/table1.csv        # workstation
#   snakemake --profile slurm results/table1.csv    # SLURM cluster
#
# The DAG: dataset indexes -> faces (dataset x quality x split x shard) ->
# train (model) / processed test copies (dataset x quality x split x operation
# x shard) -> scores (model x copy) -> metrics (model x test set x operation)
# -> tables (results/table1.csv, results/tables/*). The config is validated
# and the run planned at start (dfrobust.workflow.prepare); every path is the
# plan's layout (dfrobust.plan.LAYOUT), and the rules read it from there.

import sys

from snakemake.utils import min_version

from dfrobust.core.errors import InputError
from dfrobust.datasets import reader
from dfrobust.workflow import export_checkout, names_regex, prepare
from snakemake.exceptions import WorkflowError

min_version("9.0")

for _note in export_checkout(workflow.current_basedir):  # this file's checkout, also when included
    print(f"note: {_note}", file=sys.stderr)


# The demo's config.yaml, unless config files are named (--configfile): those are
# the whole config (e.g. config/ffpp.yaml, then overlays such as
# config/protocols/bat.yaml), never laid over the demo's settings.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


try:
    _validated, PLAN, _notes = prepare(config)
except InputError as _error:
    raise WorkflowError(str(_error)) from None
for _note in _notes:
    print(f"note: {_note}", file=sys.stderr)
config.clear()
config.update(_validated)  # every rule's params are blocks of the validated config
LAYOUT = PLAN.layout

wildcard_constraints:
    dataset=names_regex(PLAN.datasets),
    quality=names_regex({q for d in PLAN.datasets.values() for q in d.qualities}),
    split=names_regex(["train", "val", "test", "all"]),
    shard=r"\d{3}",
    model=names_regex({m.name for m in PLAN.models.values()}),
    trainset=names_regex({m.trainset for m in PLAN.models.values()}),
    operation=names_regex(PLAN.operations),
    test_set=names_regex(PLAN.test_sets),


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/faces.smk"
include: "rules/distort.smk"
include: "rules/train.smk"
include: "rules/score.smk"
include: "rules/report.smk"


rule all:
    """Every table with Table I's figures and DeLong tests, the operations figure and the stage summaries."""
    input:
        [PLAN.table_file(name) for name in PLAN.tables],
        LAYOUT.delong.format(table="table1"),
        LAYOUT.figure.format(figure="table1_heatmap"),
        LAYOUT.figure.format(figure="operations"),
        LAYOUT.faces_summary,
        LAYOUT.copies_summary,
    default_target: True
    localrule: True
