# Quick start:  make demo   (set up, then run the whole pipeline on the embedded demo)
#               make showcase   (set up, then the data and Table I that show the paper's finding, in showcase/)
#               make test   (set up, then run the test suite)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
TARGET ?=

.PHONY: setup demo showcase test test-fast dry-run report lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	$(BIN)/python -c "import torch, torchvision, timm, dlib; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'timm', timm.__version__)"
	touch $@

demo: setup
	$(BIN)/snakemake --cores $(CORES) $(TARGET)

showcase: setup
	$(BIN)/snakemake --cores $(CORES) --directory showcase --configfile config/showcase.yaml -- $(or $(TARGET),results/table1.csv results/figures/table1_heatmap.png)

dry-run: setup
	$(BIN)/snakemake -n $(TARGET)

report: setup
	$(BIN)/snakemake --cores $(CORES) $(TARGET)
	$(BIN)/snakemake --report report.html $(TARGET)

test: setup
	$(BIN)/python -m pytest -q -rs

test-fast: setup
	$(BIN)/python -m pytest -q -rs -m "not slow and not slurm"

lint: setup
	$(BIN)/snakemake --lint

clean:
	rm -rf results logs benchmarks .snakemake resources/demo resources/demo_celebdf resources/tiny showcase
