# Table I, the other tables, figures and the HTML report.

rule table1:
    """Table I of the paper: video AUC (%) per (detector, training set) and operation."""
    input:
        metrics=METRIC_FILES,
        scores=SCORE_FILES,
    output:
        csv=report("results/table1.csv", caption="../report/table1.rst", category="Table I"),
        md="results/table1.md",
        tex="results/table1.tex",
        ci=report("results/table1_ci.csv", caption="../report/table1_ci.rst", category="Table I"),
        delong="results/table1_delong.csv",
    params:
        report=config["report"],
        operations=TABLE_OPERATIONS,
        methods=METHOD_ORDER,
    log:
        "logs/report/table1.log",
    localrule: True
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/table1.py"


rule figures:
    """Heatmap of Table I, AUC drop per category, ROC curves per model, AUC against severity."""
    input:
        metrics=METRIC_FILES,
        scores=SCORE_FILES,
    output:
        heatmap=report("results/figures/table1_heatmap.png", caption="../report/heatmap.rst", category="Figures"),
        drop=report("results/figures/auc_drop.png", caption="../report/auc_drop.rst", category="Figures"),
        severity=report("results/figures/severity.png", caption="../report/severity.rst", category="Figures"),
        roc=[report(f"results/figures/roc_{m}_{q}.png", caption="../report/roc.rst", category="ROC curves")
             for m, q in TABLE1_ROWS],
    params:
        report=config["report"],
        operations=TABLE_OPERATIONS,
        methods=METHOD_ORDER,
    log:
        "logs/report/figures.log",
    localrule: True
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/figures.py"


rule table:
    """One table of `tables`: rows (models) x columns (test set, operation) x metrics."""
    input:
        table_metric_files,
    output:
        csv=report("results/tables/{table}.csv", caption="../report/table.rst", category="Tables"),
        md="results/tables/{table}.md",
        tex="results/tables/{table}.tex",
        ci="results/tables/{table}_ci.csv",
    params:
        table=lambda wc: table_spec(wc.table),
        decimals=config["report"]["decimals"],
    wildcard_constraints:
        table=names_regex(PLAN.tables),
    log:
        "logs/report/tables/{table}.log",
    localrule: True
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/table.py"


rule tables:
    """Every table of `tables`."""
    input:
        [f"results/tables/{name}.csv" for name in PLAN.tables],
    localrule: True
