#!/usr/bin/env bash
# Run by Snakemake inside the new conda environment (--sdm conda), after it is
# created: install the dfrobust checkout whose Snakefile runs (the Snakefile
# exports DFROBUST_REPO), so the rules' scripts import it like any package.
# Editable: code edits in the checkout need no new environment.
set -euo pipefail
python -m pip install --no-deps --editable "${DFROBUST_REPO:?not set: run this through the dfrobust Snakefile}"
