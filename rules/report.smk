# Every table (Table I and the declared ones: one engine, dfrobust.reporting.tables),
# Table I's DeLong tests and figures, and the HTML report's captions.


rule table:
    """One table: rows (models) x columns (test set, operation) x metrics; results/table1.* is Table I."""
    input:
        lambda wc: PLAN.table_metrics(table_name(wc)),
    output:
        csv=report(LAYOUT.table_csv, caption="../report/table.rst", category="Tables", subcategory="{table}"),
        md=LAYOUT.table_md,
        tex=LAYOUT.table_tex,
        ci=report(LAYOUT.table_ci, caption="../report/table_ci.rst", category="Tables", subcategory="{table}"),
    params:
        table=table_spec,
    wildcard_constraints:
        table=names_regex([LAYOUT.table_stem(name) for name in PLAN.tables]),
    log:
        "logs/report/{table}.log",
    localrule: True
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/table.py"


rule delong:
    """Pairwise DeLong tests between Table I's rows on each of its columns."""
    input:
        PLAN.table_scores("table1"),
    output:
        LAYOUT.delong.format(table="table1"),
    params:
        table=PLAN.table1.spec(config["report"]["decimals"]),
        enabled=config["report"]["delong"],
    log:
        "logs/report/table1_delong.log",
    localrule: True
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/delong.py"


rule figures:
    """Heatmap of Table I, AUC drop per category, ROC curves per model, AUC against severity."""
    input:
        metrics=PLAN.table_metrics("table1"),
        scores=PLAN.table_scores("table1"),
    output:
        heatmap=report(LAYOUT.figure.format(figure="table1_heatmap"), caption="../report/heatmap.rst", category="Figures"),
        drop=report(LAYOUT.figure.format(figure="auc_drop"), caption="../report/auc_drop.rst", category="Figures"),
        severity=report(LAYOUT.figure.format(figure="severity"), caption="../report/severity.rst", category="Figures"),
        roc=[report(LAYOUT.figure.format(figure=f"roc_{m.name}_{m.trainset}"), caption="../report/roc.rst",
                    category="ROC curves") for m in PLAN.table1.rows],
    params:
        table=PLAN.table1.spec(config["report"]["decimals"]),
        report=config["report"],
        models=[m.id for m in PLAN.table1.rows],
    log:
        "logs/report/figures.log",
    localrule: True
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/figures.py"


rule tables:
    """Every table."""
    input:
        [PLAN.table_file(name) for name in PLAN.tables],
    localrule: True


# one target per group of tables (`tables.<name>.group`): a paper's tables in one command
for _group, _names in PLAN.groups().items():

    rule:
        name:
            _group
        input:
            [PLAN.table_file(name) for name in _names],
        localrule: True
