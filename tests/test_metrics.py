"""Metrics of a score table, checked against scikit-learn and against hand-computed values."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import jsonschema

from dfrobust.core.config import block, load_schemas, resolve_ref
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from dfrobust.evaluation import (
    MetricsInputError,
    bootstrap_auc,
    compute_metrics,
    delong_test,
    delong_videos,
    roc_points,
    video_scores,
)
from dfrobust.evaluation.bootstrap import rank_auc
from dfrobust.stages.score import evaluate_file
from dfrobust.core.errors import InputError
from dfrobust.core.io import read_json

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["video_id", "manipulation", "label", "frame_index", "score"]


def evaluation(**settings):
    """The evaluation block with these settings (the schema's defaults for the rest)."""
    return block("evaluation", settings)


def random_frames(seed=0, n_real=30, n_fake=60, frames=(1, 8), ties=False, separation=0.15):
    """A synthetic score table; with ties=True scores are rounded to one decimal."""
    rng = np.random.default_rng(seed)
    methods = ["Deepfakes", "FaceSwap", "Face2Face"]
    rows = []
    for v in range(n_real + n_fake):
        fake = v >= n_real
        manipulation = methods[v % 3] if fake else "original"
        video_id = f"{manipulation}/{v:03d}"
        centre = 0.45 + (separation if fake else 0.0)
        for f in range(rng.integers(frames[0], frames[1] + 1)):
            score = float(np.clip(rng.normal(centre, 0.2), 0, 1))
            rows.append((video_id, manipulation, int(fake), f * 10, round(score, 1) if ties else score))
    return pd.DataFrame(rows, columns=COLUMNS)


def one_frame_table(real_scores, fake_scores):
    rows = [(f"original/{i:03d}", "original", 0, 0, s) for i, s in enumerate(real_scores)]
    rows += [(f"Deepfakes/{i:03d}", "Deepfakes", 1, 0, s) for i, s in enumerate(fake_scores)]
    return pd.DataFrame(rows, columns=COLUMNS)


def means_by_hand(frames):
    """Video means in exact arithmetic, so equal means are exactly equal floats (ties)."""
    sums, counts, labels = {}, {}, {}
    for vid, label, score in zip(frames.video_id, frames.label, frames.score):
        sums[vid] = sums.get(vid, 0) + Fraction(repr(score))
        counts[vid] = counts.get(vid, 0) + 1
        labels[vid] = label
    ids = sorted(sums)
    return np.array([labels[v] for v in ids]), np.array([float(sums[v] / counts[v]) for v in ids])


# ---------------------------------------------------------------- vs scikit-learn

@pytest.mark.parametrize("seed,ties", [(0, False), (1, False), (2, True), (3, True)])
def test_metrics_match_sklearn(seed, ties):
    frames = random_frames(seed, ties=ties)
    m = compute_metrics(frames, evaluation(bootstrap=50, far_levels=[0.01, 0.05, 0.1, 0.3]))
    labels, scores = means_by_hand(frames)
    if ties:  # tied video means across classes, the case that needs care
        assert set(scores[labels == 0]) & set(scores[labels == 1])
    assert m["video_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert m["frame_auc"] == pytest.approx(roc_auc_score(frames.label, frames.score), abs=1e-12)
    assert m["average_precision"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    for far, key in [(0.01, "1pct"), (0.05, "5pct"), (0.1, "10pct"), (0.3, "30pct")]:
        assert m[f"pauc_{key}"] == pytest.approx(roc_auc_score(labels, scores, max_fpr=far), abs=1e-12)
    assert m["video_accuracy"] == pytest.approx(np.mean((scores >= 0.5) == labels))
    assert m["frame_accuracy"] == pytest.approx(np.mean((frames.score >= 0.5) == frames.label))


def test_ties_everywhere_give_half():
    frames = one_frame_table([0.5] * 5, [0.5] * 7)
    m = compute_metrics(frames, evaluation(bootstrap=20))
    assert m["video_auc"] == 0.5
    assert m["pauc_10pct"] == pytest.approx(0.5)
    assert m["tar_at_far_10pct"] == pytest.approx(0.1)  # on the chance diagonal
    assert m["eer"] == pytest.approx(0.5)


def test_roc_points_match_sklearn():
    frames = random_frames(4, ties=True)
    labels, scores = means_by_hand(frames)
    fpr, tpr, thr = roc_points(frames, level="video")
    ref = roc_curve(labels, scores, drop_intermediate=False)
    for mine, theirs in zip((fpr, tpr, thr), ref):
        np.testing.assert_allclose(mine, theirs)
    f_fpr, f_tpr, _ = roc_points(frames, level="frame")
    np.testing.assert_allclose(f_fpr, roc_curve(frames.label, frames.score, drop_intermediate=False)[0])
    with pytest.raises(ValueError, match="level"):
        roc_points(frames, level="shot")


# ---------------------------------------------------------------- by hand

def test_video_aggregation_by_hand():
    rows = [
        ("original/000", "original", 0, 0, 0.1), ("original/000", "original", 0, 5, 0.3),   # 0.2
        ("original/001", "original", 0, 0, 0.6),                                              # 0.6
        ("Deepfakes/000_001", "Deepfakes", 1, 0, 0.2), ("Deepfakes/000_001", "Deepfakes", 1, 5, 0.8),  # 0.5
        ("Deepfakes/000_001", "Deepfakes", 1, 9, 0.5),
        ("Deepfakes/001_000", "Deepfakes", 1, 0, 0.9),                                        # 0.9
    ]
    frames = pd.DataFrame(rows, columns=COLUMNS).sample(frac=1, random_state=3)
    videos = video_scores(frames)
    assert list(videos.video_id) == sorted(videos.video_id)
    by_id = videos.set_index("video_id")
    assert by_id.loc["original/000", "score"] == pytest.approx(0.2)
    assert by_id.loc["Deepfakes/000_001", "score"] == pytest.approx(0.5)
    assert by_id.loc["Deepfakes/000_001", "n_frames"] == 3
    m = compute_metrics(frames, evaluation(bootstrap=0))
    # fake 0.5 beats real 0.2 only; fake 0.9 beats both: 3 of 4 pairs
    assert m["video_auc"] == pytest.approx(0.75)
    # 0.2 real ok, 0.6 real wrong, 0.5 fake ok (>=), 0.9 fake ok
    assert m["video_accuracy"] == pytest.approx(0.75)
    # frame level: reals (0.1, 0.3, 0.6) against fakes (0.2, 0.8, 0.5, 0.9)
    pairs = [(f > r) + 0.5 * (f == r) for f in (0.2, 0.8, 0.5, 0.9) for r in (0.1, 0.3, 0.6)]
    assert m["frame_auc"] == pytest.approx(sum(pairs) / 12)
    assert m["counts"] == {"videos": {"real": 2, "fake": 2}, "frames": {"real": 3, "fake": 4}}
    assert m["ci_low"] is None and m["ci_high"] is None


def test_same_name_under_two_manipulations_is_two_videos():
    rows = [
        ("original/000", "original", 0, 0, 0.3), ("original/001", "original", 0, 0, 0.5),
        ("Deepfakes/000_003", "Deepfakes", 1, 0, 0.9), ("Deepfakes/000_003", "Deepfakes", 1, 1, 0.9),
        ("FaceSwap/000_003", "FaceSwap", 1, 0, 0.1), ("FaceSwap/000_003", "FaceSwap", 1, 1, 0.1),
    ]
    m = compute_metrics(pd.DataFrame(rows, columns=COLUMNS), evaluation(bootstrap=0))
    assert m["counts"]["videos"] == {"real": 2, "fake": 2}
    assert m["per_manipulation"] == {
        "Deepfakes": {"video_auc": 1.0, "n_videos": 1},
        "FaceSwap": {"video_auc": 0.0, "n_videos": 1},
    }
    assert m["video_auc"] == pytest.approx(0.5)  # merged by name it would be one video at 0.5 -> 0.75


def test_low_far_metrics_on_hand_made_roc():
    # ROC vertices: (0,.25) (.1,.25) (.1,.5) (.6,.5) (.6,.75) (.7,.75) (.7,1) (1,1)
    reals = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    fakes = [0.95, 0.85, 0.35, 0.25]
    m = compute_metrics(one_frame_table(reals, fakes), evaluation(bootstrap=0, far_levels=[0.01, 0.05, 0.1]))
    assert m["tar_at_far_1pct"] == pytest.approx(0.25)
    assert m["tar_at_far_5pct"] == pytest.approx(0.25)
    assert m["tar_at_far_10pct"] == pytest.approx(0.5)  # vertical at 10%: best point with FPR <= 10%
    # partial area on [0, .1] is .1 * .25
    assert m["tauc_10pct"] == pytest.approx(0.25)
    assert m["tauc_1pct"] == pytest.approx(0.25)
    assert m["pauc_10pct"] == pytest.approx(0.5 * (1 + (0.025 - 0.005) / (0.1 - 0.005)))
    assert m["pauc_1pct"] == pytest.approx(0.5 * (1 + (0.0025 - 0.00005) / (0.01 - 0.00005)))
    assert m["eer"] == pytest.approx(0.5)
    assert m["video_auc"] == pytest.approx(1 - (0 + 1 + 6 + 7) / 40)  # reals above each fake


def test_low_far_metrics_interpolate_tied_segment():
    # a tie of one real and one fake at 0.5 gives a diagonal segment (0,.5) -> (.5,1)
    m = compute_metrics(one_frame_table([0.5, 0.1], [0.5, 0.9]), evaluation(bootstrap=0, far_levels=[0.1]))
    assert m["tar_at_far_10pct"] == pytest.approx(0.6)
    assert m["tauc_10pct"] == pytest.approx(0.55)
    assert m["pauc_10pct"] == pytest.approx(0.5 * (1 + (0.055 - 0.005) / 0.095))
    assert m["eer"] == pytest.approx(0.25)
    assert m["video_auc"] == pytest.approx(0.875)


# ---------------------------------------------------------------- bootstrap

def test_bootstrap_interval_contains_estimate_and_is_reproducible():
    frames = random_frames(5)
    a = compute_metrics(frames, evaluation(bootstrap=300, seed=7))
    b = compute_metrics(frames.sample(frac=1, random_state=1), evaluation(bootstrap=300, seed=7))  # row order is irrelevant
    c = compute_metrics(frames, evaluation(bootstrap=300, seed=8))
    assert a["ci_low"] <= a["video_auc"] <= a["ci_high"]
    assert a["ci_low"] < a["ci_high"]
    assert (a["ci_low"], a["ci_high"]) == (b["ci_low"], b["ci_high"])
    assert (a["ci_low"], a["ci_high"]) != (c["ci_low"], c["ci_high"])
    narrow = compute_metrics(frames, evaluation(bootstrap=300, seed=7, ci=0.5))
    assert a["ci_low"] <= narrow["ci_low"] <= narrow["ci_high"] <= a["ci_high"]


def test_bootstrap_is_stratified():
    labels = np.r_[np.zeros(1, int), np.ones(20, int)]  # a single real video
    scores = np.linspace(0, 1, 21)
    low, high, reps = bootstrap_auc(labels, scores, n=200, seed=0, ci=0.95)
    assert len(reps) == 200 and np.all(np.isfinite(reps))  # both classes in every resample
    assert low == high == 1.0  # the only real is always the lowest score


def test_rank_auc_matches_sklearn_rowwise():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 40)
    scores = np.round(rng.random((5, 40)), 1)
    expected = [roc_auc_score(labels, row) for row in scores]
    np.testing.assert_allclose(rank_auc(labels, scores), expected)


# ---------------------------------------------------------------- degenerate input

@pytest.mark.parametrize(
    "frames,message",
    [
        (pd.DataFrame(columns=COLUMNS), "empty"),
        (one_frame_table([0.1, 0.2], []), "no fake"),
        (one_frame_table([], [0.1, 0.2]), "no real"),
        (one_frame_table([0.1], [0.2]).drop(columns="score"), "lacks column"),
        (one_frame_table([0.1], [float("nan")]), "NaN"),
        (one_frame_table([0.1], [3.2]), r"\[0, 1\]"),
        (one_frame_table([0.1], [0.2]).assign(label=[0, 2]), "label"),
        (pd.DataFrame([("v", "original", 0, 0, 0.1), ("v", "original", 1, 1, 0.2)], columns=COLUMNS), "different labels"),
    ],
)
def test_degenerate_input_raises_clear_error(frames, message):
    with pytest.raises(MetricsInputError, match=message) as info:
        compute_metrics(frames, evaluation(bootstrap=10), source="scores/x.csv")
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("scores/x.csv: ")


# ---------------------------------------------------------------- DeLong

def delong_slow(labels, s1, s2):
    """Textbook DeLong: O(n^2) structural components from the kernel psi."""
    labels = np.asarray(labels)
    out = []
    for s in (s1, s2):
        x, y = s[labels == 1], s[labels == 0]
        psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
        out.append((psi.mean(), psi.mean(axis=1), psi.mean(axis=0)))
    m, n = (labels == 1).sum(), (labels == 0).sum()
    (a1, v10a, v01a), (a2, v10b, v01b) = out
    s10 = np.cov(np.vstack([v10a, v10b]))
    s01 = np.cov(np.vstack([v01a, v01b]))
    cov = s10 / m + s01 / n
    z = (a1 - a2) / np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    return a1, a2, z, 2 * norm.sf(abs(z))


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, True)])
def test_delong_matches_slow_reference(seed, ties):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 80)
    base = labels * 0.8 + rng.normal(0, 1, 80)
    s1 = base + rng.normal(0, 0.5, 80)
    s2 = base + rng.normal(0, 1.0, 80)
    if ties:
        s1, s2 = np.round(s1), np.round(s2)
    result = delong_test(labels, s1, s2)
    expected = delong_slow(labels, s1, s2)
    np.testing.assert_allclose(tuple(result), expected, rtol=1e-10)
    assert result.auc1 == pytest.approx(roc_auc_score(labels, s1))
    swapped = delong_test(labels, s2, s1)
    assert swapped.z == pytest.approx(-result.z) and swapped.p == pytest.approx(result.p)


def test_delong_identical_scores_p_is_one():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 50)
    scores = rng.random(50)
    auc1, auc2, z, p = delong_test(labels, scores, scores)
    assert auc1 == auc2 and z == 0.0 and p == 1.0
    # a monotone transform keeps the ranks, hence the AUC and the components
    assert delong_test(labels, scores, scores**3).p == pytest.approx(1.0)


def test_delong_videos_pairs_by_video_id():
    a = random_frames(6)
    b = a.assign(score=np.clip(a.score + np.random.default_rng(1).normal(0, 0.2, len(a)), 0, 1))
    direct = delong_videos(a, b)
    shuffled = delong_videos(a, b.sample(frac=1, random_state=2))
    assert tuple(direct) == pytest.approx(tuple(shuffled))
    la, sa = means_by_hand(a)
    _, sb = means_by_hand(b)
    assert tuple(direct) == pytest.approx(tuple(delong_slow(la, sa, sb)))
    with pytest.raises(MetricsInputError, match="at least 2"):
        delong_test([0, 1, 1], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])


# ---------------------------------------------------------------- file + schema

def test_evaluate_file_writes_record_with_provenance(tmp_path):
    scores = tmp_path / "results/scores/xception/c23/ffpp/raw/clean.csv"
    scores.parent.mkdir(parents=True)
    random_frames(7).to_csv(scores, index=False)
    out = tmp_path / "results/metrics/xception/c23/ffpp_raw/clean.json"
    cell = {"method": "xception", "train_quality": "c23", "operation": "clean", "category": "reference"}
    record = evaluate_file(scores, out, {"bootstrap": 100, "ci": 0.9, "seed": 3}, cell)
    saved = read_json(out)
    assert saved["video_auc"] == pytest.approx(record["video_auc"])
    assert saved["method"] == "xception" and saved["operation"] == "clean"
    assert saved["seed"] == 3 and saved["bootstrap"] == 100 and saved["ci_level"] == 0.9
    assert {k: saved["provenance"]["config"][k] for k in ("bootstrap", "ci", "seed")} == {"bootstrap": 100, "ci": 0.9, "seed": 3}
    assert saved["provenance"]["config"]["far_levels"] == [0.01, 0.1]  # the rest of the block: the schema's defaults
    assert saved["provenance"]["inputs"][0]["path"] == str(scores)
    with pytest.raises(MetricsInputError, match="no fake"):
        reals = tmp_path / "reals.csv"
        one_frame_table([0.1, 0.2], []).to_csv(reals, index=False)
        evaluate_file(reals, tmp_path / "bad.json", {}, cell)
    assert not (tmp_path / "bad.json").exists()


def test_evaluation_schema_defaults():
    schema = load_schemas()[1]["evaluation"]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    properties = {k: resolve_ref(v, schema) for k, v in schema["properties"].items()}
    for key, spec in properties.items():
        assert "default" in spec and "description" in spec, key
    defaults = {k: v["default"] for k, v in properties.items()}
    assert defaults == {"bootstrap": 1000, "ci": 0.95, "seed": 0, "far_levels": [0.01, 0.1], "threshold": 0.5,
                        "recall_levels": [], "wp_alpha": 100}
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(defaults)
    assert not validator.is_valid({"bootstrap": "many"})
    assert not validator.is_valid({"boostrap": 10})


def test_low_far_metrics_at_frame_level_match_scikit_learn():
    rng = np.random.default_rng(4)
    labels = np.repeat([0, 1], 60)
    frames = pd.DataFrame({"video_id": [f"v{i // 3}" for i in range(120)], "label": labels,
                           "manipulation": np.where(labels == 1, "Deepfakes", "original"),
                           "frame_index": np.arange(120) % 3, "score": np.clip(rng.normal(0.4 + 0.2 * labels, 0.2), 0, 1)})
    out = compute_metrics(frames, evaluation(bootstrap=0, far_levels=[0.1]))
    assert out["frame_pauc_10pct"] == pytest.approx(roc_auc_score(labels, frames["score"], max_fpr=0.1), abs=1e-12)
    fpr, tpr, _ = roc_curve(labels, frames["score"])
    assert out["frame_tar_at_far_10pct"] == pytest.approx(np.interp(0.1, fpr, tpr), abs=0.02)
    assert out["frame_tar_at_far_10pct"] != out["tar_at_far_10pct"]


def test_weighted_precision_counts_false_alarms_alpha_times():
    from dfrobust.evaluation.metrics import weighted_precision

    labels = np.array([1, 1, 0, 1, 0, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    assert weighted_precision(labels, scores, 0.5, 100) == 1.0  # 2 of 4 fakes before any real
    assert weighted_precision(labels, scores, 0.75, 100) == pytest.approx(3 / (3 + 100))
    assert weighted_precision(labels, scores, 1.0, 10) == pytest.approx(4 / (4 + 10 * 3))
    frames = pd.DataFrame({"video_id": [f"v{i}" for i in range(8)], "label": labels, "frame_index": 0,
                           "manipulation": np.where(labels == 1, "Deepfakes", "original"), "score": scores})
    out = compute_metrics(frames, evaluation(bootstrap=0, recall_levels=[0.75]))
    assert out["log_wp_at_recall_0.75"] == pytest.approx(np.log(3 / 103))


def test_log_loss_is_scikit_learns_at_both_levels():
    from sklearn.metrics import log_loss

    frames = random_frames(3)
    out = compute_metrics(frames, evaluation(bootstrap=0))
    assert out["frame_log_loss"] == pytest.approx(log_loss(frames["label"], frames["score"], labels=[0, 1]))
    videos = frames.groupby("video_id").agg(label=("label", "first"), score=("score", "mean"))
    assert out["video_log_loss"] == pytest.approx(log_loss(videos["label"], videos["score"], labels=[0, 1]))
    # by hand on two videos: -(log(0.8) + log(1 - 0.3)) / 2
    two = one_frame_table([0.3], [0.8])
    assert compute_metrics(two, evaluation(bootstrap=0))["video_log_loss"] == pytest.approx(-(np.log(0.8) + np.log(0.7)) / 2)


def test_a_test_set_whose_videos_were_all_excluded_records_why(tmp_path):
    import json

    scores = tmp_path / "scores.csv"
    pd.DataFrame(columns=COLUMNS).to_csv(scores, index=False)  # what the score job writes when no face is left
    shard = tmp_path / "shard_000.json"
    videos = [{"video_id": f"v{i}", "label": i % 2, "manipulation": "DFDC" if i % 2 else "original",
               "status": "no_face" if i < 3 else "error"} for i in range(4)]
    shard.write_text(json.dumps({"videos": videos}))
    cell = {"method": "xception", "train_quality": "raw", "test_set": "faceless", "operation": "clean"}
    record = evaluate_file(scores, tmp_path / "m.json", {"bootstrap": 10}, cell, shards=[shard])
    assert record["status"] == "no_video_scored" and "video_auc" not in record
    assert record["reason"] == "no real or fake video scored: 4 of 4 videos excluded (error 1, no_face 3)"
    # a class the test set has no video of (none excluded) is an error, as any one-class table
    shard.write_text(json.dumps({"videos": [{**v, "label": 0} for v in videos]}))
    with pytest.raises(MetricsInputError):
        evaluate_file(scores, tmp_path / "m2.json", {"bootstrap": 10}, cell, shards=[shard])


def test_a_test_set_pooling_qualities_counts_each_video_once_per_quality(tmp_path):
    paths = []
    for i, quality in enumerate(("raw", "c40")):
        path = tmp_path / "scores" / "m" / "t" / "ffpp" / quality / "test" / "clean.csv"
        path.parent.mkdir(parents=True)
        random_frames(i).to_csv(path, index=False)
        paths.append(path)
    cell = {"method": "m", "train_quality": "t", "test_set": "ffpp_all", "operation": "clean"}
    pooled = evaluate_file(paths, tmp_path / "pooled.json", {"bootstrap": 0}, cell)
    single = evaluate_file(paths[0], tmp_path / "raw.json", {"bootstrap": 0}, cell)
    assert pooled["counts"]["videos"]["real"] == 2 * single["counts"]["videos"]["real"]
    both = pd.concat([random_frames(0).assign(video_id=lambda f: "raw/" + f.video_id),
                      random_frames(1).assign(video_id=lambda f: "c40/" + f.video_id)])
    assert pooled["video_auc"] == pytest.approx(compute_metrics(both, evaluation(bootstrap=0))["video_auc"])
    assert [Path(i["path"]).parent.parent.name for i in pooled["provenance"]["inputs"]] == ["raw", "c40"]


# ---------------------------------------------------------------- the two-branch paper's metrics (issue 28)

def window_rows(video_id, label, windows, g=lambda d: d / (d + 0.84)):
    """Per-face rows of a sequence detector's score table: `windows` is [(distance, faces), ...];
    each face carries its window's score g(d), every row the video's score g(mean of the windows' d)."""
    manipulation = "Deepfakes" if label else "original"
    video = g(np.mean([d for d, _ in windows]))
    rows, frame = [], 0
    for k, (d, faces) in enumerate(windows):
        for _ in range(faces):
            rows.append((video_id, manipulation, label, frame, g(d), k, video))
            frame += 7
    return rows


def window_table(videos):
    rows = [row for video in videos for row in window_rows(*video)]
    return pd.DataFrame(rows, columns=COLUMNS + ["window", "video_score"])


def test_video_score_column_ranks_videos_by_their_mean_window_distance():
    """Windows at d = [0, 10] against [3, 3]: by the mean distance the first video is the more
    fake (5 > 3); the mean of the rows' scores d / (d + 0.84) would put it below (0.46 < 0.78)."""
    frames = window_table([("Deepfakes/000", 1, [(0.0, 10), (10.0, 10)]), ("original/001", 0, [(3.0, 10), (3.0, 10)])])
    assert compute_metrics(frames, evaluation(bootstrap=0))["video_auc"] == 1.0
    assert compute_metrics(frames.drop(columns="video_score"), evaluation(bootstrap=0))["video_auc"] == 0.0
    videos = video_scores(frames)
    assert videos["score"].tolist() == pytest.approx([5 / 5.84, 3 / 3.84])
    assert roc_points(frames)[1].tolist() == [0.0, 1.0, 1.0]
    uneven = frames.copy()
    uneven.loc[0, "video_score"] = 0.1
    with pytest.raises(MetricsInputError, match="different video_scores"):
        compute_metrics(uneven, evaluation(bootstrap=0))
    outside = frames.assign(video_score=1.5)
    with pytest.raises(MetricsInputError, match="video_score must be a probability"):
        compute_metrics(outside, evaluation(bootstrap=0))


def test_frame_metrics_count_frames_not_windows():
    """A window of 9 faces weighs 9 frames: the frame ROC is over faces (each carrying its window's score)."""
    videos = [("original/000", 0, [(0.5, 9), (2.0, 1)]), ("Deepfakes/001", 1, [(1.0, 5), (3.0, 5)]),
              ("original/002", 0, [(0.2, 10)]), ("Deepfakes/003", 1, [(0.8, 2), (0.1, 8)])]
    frames = window_table(videos)
    m = compute_metrics(frames, evaluation(bootstrap=0, far_levels=[0.1]))
    assert m["counts"]["frames"] == {"real": 20, "fake": 20}
    assert m["frame_auc"] == pytest.approx(roc_auc_score(frames["label"], frames["score"]))
    windows = frames.drop_duplicates(["video_id", "window"])  # one row per window: another number
    assert roc_auc_score(windows["label"], windows["score"]) != pytest.approx(m["frame_auc"])
    fpr, tpr, _ = roc_curve(frames["label"], frames["score"], drop_intermediate=False)
    assert m["frame_tar_at_far_10pct"] == pytest.approx(np.interp(0.1, fpr, tpr))


def test_vertex_reading_of_tauc_on_hand_made_roc():
    """scikit-learn's default ROC keeps the corners (0,0) (0,.25) (.1,.25) (.1,.5) (.6,.5) ...: the
    vertex reading is the mean TAR of those with FAR <= f, the text's tAUC the area over f."""
    reals = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    fakes = [0.95, 0.85, 0.35, 0.25]
    m = compute_metrics(one_frame_table(reals, fakes), evaluation(bootstrap=0, far_levels=[0.05, 0.1, 0.65]))
    assert m["tauc_vtx_10pct"] == pytest.approx((0 + 0.25 + 0.25 + 0.5) / 4)
    assert m["tauc_vtx_5pct"] == pytest.approx((0 + 0.25) / 2)
    assert m["tauc_vtx_65pct"] == pytest.approx((0 + 0.25 + 0.25 + 0.5 + 0.5 + 0.75) / 6)
    assert m["frame_tauc_vtx_10pct"] == m["tauc_vtx_10pct"]  # one frame per video
    assert m["tauc_10pct"] == pytest.approx(0.25)  # the area reading differs elsewhere
    assert m["tauc_5pct"] == pytest.approx(0.25) != m["tauc_vtx_5pct"]
    # it is the authors' group's get_trunc_auc: tpr[fpr <= f].mean() of roc_curve's default curve
    labels = np.r_[np.zeros(10), np.ones(4)]
    fpr, tpr, _ = roc_curve(labels, reals + fakes)
    assert m["tauc_vtx_65pct"] == pytest.approx(tpr[fpr <= 0.65].mean())


def test_log_wp_with_tied_scores_calls_the_whole_tie_and_prints_the_recall_it_reaches():
    from dfrobust.evaluation.metrics import recall_threshold, weighted_precision

    # scores ranked: fake .9, then a tie at .8 of two fakes and one real, then a real .1
    labels = np.array([1, 1, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.8, 0.8, 0.1])
    # recall 0.5 needs 1.5 of 3 fakes: the cut cannot split the tie, so all three at .8 are called
    assert recall_threshold(labels, scores, 0.5) == 0.8
    assert weighted_precision(labels, scores, 0.5, 100) == pytest.approx(3 / (3 + 100))
    assert weighted_precision(labels, scores, 1 / 3, 100) == 1.0  # the fake at .9 alone
    frames = pd.DataFrame({"video_id": [f"v{i}" for i in range(5)], "label": labels, "frame_index": 0,
                           "manipulation": np.where(labels == 1, "Deepfakes", "original"), "score": scores})
    m = compute_metrics(frames, evaluation(bootstrap=0, recall_levels=[0.1, 0.5, 0.9]))
    assert m["log_wp_at_recall_0.1"] == 0.0 and m["recall_at_recall_0.1"] == pytest.approx(1 / 3)
    assert m["log_wp_at_recall_0.5"] == pytest.approx(np.log(3 / 103)) and m["recall_at_recall_0.5"] == 1.0
    assert m["threshold_at_recall_0.5"] == 0.8
    # the order of tied rows does not matter
    shuffled = frames.iloc[[3, 2, 4, 0, 1]]
    assert compute_metrics(shuffled, evaluation(bootstrap=0, recall_levels=[0.5]))["log_wp_at_recall_0.5"] == \
        pytest.approx(np.log(3 / 103))


def test_test_from_valid_applies_the_validation_sets_thresholds():
    valid = one_frame_table([0.1, 0.2, 0.6], [0.9, 0.7, 0.5, 0.3])
    test = one_frame_table([0.05, 0.65, 0.75, 0.8], [0.95, 0.72, 0.4, 0.1])
    m = compute_metrics(test, evaluation(bootstrap=0, recall_levels=[0.5, 0.9]), thresholds_from=valid)
    # valid: recall .5 first reached at .7 (2 of 4 fakes), recall .9 at .3 (4 of 4)
    assert (m["threshold_at_recall_0.5"], m["threshold_at_recall_0.9"]) == (0.7, 0.3)
    # on test, >= .7: fakes .95 .72, reals .75 .8 -> recall .5, wP 2 / (2 + 200)
    assert m["recall_at_recall_0.5"] == 0.5 and m["log_wp_at_recall_0.5"] == pytest.approx(np.log(2 / 202))
    # >= .3: fakes .95 .72 .4, reals .65 .75 .8 -> recall .75, below the target: it is printed as reached
    assert m["recall_at_recall_0.9"] == 0.75 and m["log_wp_at_recall_0.9"] == pytest.approx(np.log(3 / 303))
    # a threshold above every test score calls nothing fake: log(wP) undefined (None), recall 0
    high = compute_metrics(test, evaluation(bootstrap=0, recall_levels=[0.1]), thresholds_from=one_frame_table([0.1], [0.99]))
    assert high["log_wp_at_recall_0.1"] is None and high["recall_at_recall_0.1"] == 0.0
    # without a validation set the thresholds are the test set's own
    own = compute_metrics(test, evaluation(bootstrap=0, recall_levels=[0.5]))
    assert own["threshold_at_recall_0.5"] == 0.72 and own["recall_at_recall_0.5"] == 0.5


def test_evaluate_file_reads_the_threshold_scores_of_a_test_from_valid_cell(tmp_path):
    valid, test = tmp_path / "valid.csv", tmp_path / "test.csv"
    one_frame_table([0.1, 0.2, 0.6], [0.9, 0.7, 0.5, 0.3]).to_csv(valid, index=False)
    one_frame_table([0.05, 0.65, 0.75, 0.8], [0.95, 0.72, 0.4, 0.1]).to_csv(test, index=False)
    cell = {"method": "two_branch", "train_quality": "c40", "test_set": "dfdc_preview@dfdc_preview_val",
            "operation": "clean", "thresholds_from": {"test_set": "dfdc_preview_val", "manipulations": None}}
    record = evaluate_file(test, tmp_path / "m.json", {"bootstrap": 0, "recall_levels": [0.5]}, cell, thresholds=[valid])
    assert record["threshold_at_recall_0.5"] == 0.7 and record["recall_at_recall_0.5"] == 0.5
    assert record["threshold_scores"] == [str(valid)]
    assert [i["path"] for i in record["provenance"]["inputs"]] == [str(test), str(valid)]
    with pytest.raises(InputError, match="go together"):
        evaluate_file(test, tmp_path / "m2.json", {"bootstrap": 0}, cell)
