"""``propy pool``: runs averaged per variant, comparisons with intervals over queries and seeds."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import write_tiny_params

from propy.config import load_params
from propy.errors import DataError
from propy.evaluation.metrics import bootstrap_sumr
from propy.evaluation.seed_pooling import pool, pool_metrics, verdict


def write_run(root, run, ranks: dict[str, int], sumr: float, kind="propy"):
    """A run's metrics, rankings and breakdown as ``evaluate`` writes them (recalls add up to ``sumr``)."""
    (root / "metrics").mkdir(parents=True, exist_ok=True)
    r = [sumr * f for f in (0.1, 0.2, 0.3, 0.4)]
    metrics = {
        "variant": run.split("-s")[0],
        "kind": kind,
        "dataset": "synthetic",
        "split": "test",
        "epoch": 2,
        "num_queries": len(ranks),
        "R1": r[0],
        "R2": r[1],
        "R3": r[2],
        "R4": r[3],
        "SumR": sumr,
        "MedR": 2.0,
        "MeanR": 3.0,
        "unnormalized": {"SumR": sumr - 1},
        "vcmr": {"IoU0.5": {"R1": sumr / 10}},
    }
    (root / "metrics" / f"{run}.json").write_text(json.dumps(metrics))
    out = root / "results" / run
    out.mkdir(parents=True, exist_ok=True)
    (out / "rankings.jsonl").write_text(
        "".join(
            json.dumps({"desc_id": d, "vid_name": "v", "rank": k, "top10": [], "score": 0.0}) + "\n"
            for d, k in ranks.items()
        )
    )
    (out / "breakdown.json").write_text(json.dumps({"by_kind": [{"kind": "a", "n": 2, "SumR": sumr}]}))


@pytest.fixture
def study(tmp_path):
    """tiny (seeds 3, 4) with perfect ranks; worse (seeds 3, 4) never within R@4; zs_maxframe one run."""
    params = load_params(
        write_tiny_params(
            tmp_path / "params.yaml",
            {
                "study": {
                    "trained": ["tiny", "worse"],
                    "seeds": [3, 4],
                    "zero_shot": ["zs_maxframe"],
                    "ablations": {"t": ["tiny", "worse"]},
                },
                "variants": {"worse": {"model": {"interaction": "none"}}},
            },
        )
    )
    queries = ["q1", "q2", "q3"]
    write_run(tmp_path, "tiny-s3", dict.fromkeys(queries, 1), 400.0)
    write_run(tmp_path, "tiny-s4", {q: 1 for q in reversed(queries)}, 400.0)  # other order: paired by id
    write_run(tmp_path, "worse-s3", dict.fromkeys(queries, 9), 0.0)
    write_run(tmp_path, "worse-s4", dict.fromkeys(queries, 9), 100.0)
    write_run(tmp_path, "zs_maxframe", {"q1": 1, "q2": 9, "q3": 9}, 400 / 3, kind="maxframe")
    return params, tmp_path


def test_pool_averages_runs_and_compares_with_intervals(study):
    params, root = study
    comparisons = pool(params, root / "metrics", root / "results", root / "pooled", root / "pooled_results")
    worse = json.loads((root / "pooled" / "worse.json").read_text())
    assert worse["SumR"] == 50.0 and worse["sd"]["SumR"] == pytest.approx(np.std([0.0, 100.0], ddof=1))
    assert worse["runs"] == ["worse-s3", "worse-s4"] and worse["epoch"] == [2, 2]
    assert worse["vcmr"]["IoU0.5"]["R1"] == 5.0 and worse["kind"] == "propy"
    assert json.loads((root / "pooled_results" / "worse" / "breakdown.json").read_text()) == {
        "by_kind": [{"kind": "a", "n": 2, "SumR": 50.0}]
    }
    (row,) = comparisons["tables"]["t"]
    # every query lost at every seed: the change is exactly -400 whatever the resampling
    assert (row["variant"], row["delta_SumR"], row["ci"], row["verdict"]) == ("worse", -400.0, [-400.0, -400.0], "loss")
    (zs,) = comparisons["tables"]["zero_shot"]
    assert zs["delta_SumR"] == pytest.approx(-800 / 3) and zs["ci"][0] <= zs["delta_SumR"] <= zs["ci"][1]
    assert json.loads((root / "pooled" / "tiny.json").read_text())["SumR_ci"] == [400.0, 400.0]


def test_pool_refuses_runs_over_other_queries(study):
    params, root = study
    write_run(root, "worse-s4", {"q1": 1, "q9": 1}, 0.0)
    with pytest.raises(DataError, match=r"worse-s4/rankings\.jsonl: not the same test queries"):
        pool(params, root / "metrics", root / "results", root / "pooled", root / "pooled_results")


def test_a_missing_run_names_its_file(study):
    params, root = study
    (root / "metrics" / "tiny-s4.json").unlink()
    with pytest.raises(DataError, match=r"tiny-s4\.json: missing \(written by evaluate of tiny-s4\)"):
        pool(params, root / "metrics", root / "results", root / "pooled", root / "pooled_results")


def test_pool_metrics_of_one_run_has_no_spread():
    pooled = pool_metrics({"zs": {"SumR": 10.0, "R1": 1.0, "kind": "maxframe", "epoch": None}})
    assert pooled["sd"] == {"SumR": 0.0, "R1": 0.0} and pooled["runs"] == ["zs"] and pooled["kind"] == "maxframe"


def test_verdict_needs_an_interval_that_excludes_zero():
    assert [verdict(1, 3), verdict(-3, -1), verdict(-1, 3), verdict(0, 3)] == [
        "gain",
        "loss",
        "no difference",
        "no difference",
    ]


def test_seed_spread_widens_the_interval_even_with_identical_queries():
    ranks = np.ones(50, dtype=int)
    steady = np.stack([ranks, ranks])
    assert bootstrap_sumr(steady, [1], reference=steady) == (0.0, 0.0)
    # the two seeds disagree on every query: resampling the seeds alone moves SumR between 0 and 100
    split = np.stack([ranks, ranks * 5])
    low, high = bootstrap_sumr(split, [1], samples=400, seed=1)
    assert low == 0.0 and high == 100.0


def test_sweep_scores_every_combination_on_validation_only(tiny_bench, tmp_path):
    from propy.cli import main

    params = write_tiny_params(tmp_path / "params.yaml", {"train": {"epochs": 1}})
    raw = yaml.safe_load(params.read_text())
    raw["sweep"].update(variant="tiny", seed=3, grid={"train.lr": [1.0e-3, 1.0e-2], "train.batch_videos": [4]})
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    data = tmp_path / "data"  # the bench without its test split: the sweep must not need it
    shutil.copytree(tiny_bench / "synthetic", data)
    (data / "annotations" / "test.jsonl").unlink()
    out = tmp_path / "sweep.json"
    assert (
        main(
            [
                "sweep",
                "--params",
                str(params),
                "--data",
                str(data),
                "--cache",
                str(tiny_bench / "cache"),
                "--out",
                str(out),
                "--models",
                str(tmp_path / "models"),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert [(r["train.lr"], r["train.batch_videos"]) for r in result["rows"]] == [(1e-3, 4), (1e-2, 4)]
    logs = [
        json.loads((tmp_path / "models" / name / "log.json").read_text())
        for name in ("lr0.001_batch_videos4", "lr0.01_batch_videos4")
    ]
    assert [r["val_SumR"] for r in result["rows"]] == [log[0]["val_SumR"] for log in logs]
    best = max(result["rows"], key=lambda r: r["val_SumR"])
    assert result["best"] == {"train.lr": best["train.lr"], "train.batch_videos": 4} and result["split"] == "val"


def test_headline_block_is_generated_from_the_pooled_metrics(study, tmp_path):
    from propy.reports.headline import headline_markdown, markers, replace_block

    params, root = study
    for run in ("tiny-s3", "tiny-s4", "worse-s3", "worse-s4", "zs_maxframe"):  # as evaluate records it
        path = root / "metrics" / f"{run}.json"
        path.write_text(
            json.dumps(
                {
                    **json.loads(path.read_text()),
                    "num_videos": 4,
                    "environment": {"cpu": "Test CPU", "cores": 2, "python": "3.11.7", "packages": {"torch": "2.0"}},
                }
            )
        )
    pool(params, root / "metrics", root / "results", root / "pooled", root / "pooled_results")
    table = headline_markdown(params, root / "pooled")
    lines = table.splitlines()
    assert lines[2] == "| tiny | 2 | 40.0 | 80.0 | 120.0 | 160.0 | 400.0 ± 0.0 [400.0, 400.0] |  |"
    assert lines[3].startswith(
        "| worse | 2 | 5.0 | 10.0 | 15.0 | 20.0 | 50.0 ± 70.7 [0.0, 0.0] | -400.0 [-400.0, -400.0] loss |"
    )
    assert (
        "3 queries, 4 videos; seeds 3, 4" in lines[-1] and "Test CPU (2 cores), Python 3.11.7, torch 2.0" in lines[-1]
    )
    claims = json.loads((root / "pooled" / "claims.json").read_text())["claims"]
    header = lines.index("| claim | primary test | Δ [95% CI] | MDE | ceiling | p (Holm) | verdict |")
    rows = lines[header + 2 : header + 2 + len(claims)]
    assert [r.split(" | ")[0].lstrip("| ") for r in rows] == [c["claim"] for c in claims]
    assert all(r.endswith(f"| {c['verdict']} |") for r, c in zip(rows, claims))
    start, end = markers("synthetic")
    readme = f"intro\n{start}\nold numbers\n{end}\nrest\n"
    assert replace_block(readme, table, "README.md", "synthetic") == f"intro\n{start}\n{table}\n{end}\nrest\n"
    # another dataset's study adds its own block after the synthetic one and leaves that one alone
    tvr_start, tvr_end = markers("tvr")
    both = replace_block(readme, "tvr numbers", "README.md", "tvr")
    assert both == f"intro\n{start}\nold numbers\n{end}\n\n#### tvr\n\n{tvr_start}\ntvr numbers\n{tvr_end}\nrest\n"
    assert replace_block(both, "new", "README.md", "tvr").count("old numbers") == 1
    with pytest.raises(DataError, match="README.md: no <!-- headline:<dataset>:start -->"):
        replace_block("no block", table, "README.md", "synthetic")


def test_probes_pool_over_runs_and_compare_per_kind():
    from propy.evaluation.seed_pooling import Runs, compare, pool_probes

    kinds = ["order", "order", "order", "context"]
    # the order queries: run 1 wins 2 of 3, run 2 wins all; the context query has no rival
    wins = np.array([[1.0, 1.0, 0.0, np.nan], [1.0, 1.0, 1.0, np.nan]])
    located = np.array([[True, False, False, True], [True, True, False, True]])
    mine = Runs(np.ones((2, 4), int), kinds, wins, located)
    probes = pool_probes(mine, 0.5)
    assert probes["order"]["n"] == 3 and probes["order"]["pairwise"] == pytest.approx(100 * 5 / 6)
    assert probes["order"]["ci"][0] <= probes["order"]["pairwise"] <= probes["order"]["ci"][1]
    assert probes["order"]["loc_IoU0.5"] == pytest.approx(50.0)
    assert probes["context"] == {"n": 1, "n_rival": 0, "loc_IoU0.5": 100.0, "loc_ci": [100.0, 100.0]}
    chance = Runs(np.ones((2, 4), int), kinds, np.where(np.isnan(wins), np.nan, 0.5), located)
    params = load_params(write_tiny_params(Path(tempfile.mkdtemp()) / "params.yaml"))
    row = compare({"a": mine, "ref": chance}, params, "a", "ref")
    order = row["probes"]["order"]
    assert order["pairwise"]["delta"] == pytest.approx(100 * 5 / 6 - 50)
    # the same localisation: no change, and an interval that holds 0 (each side's seeds are drawn apart)
    assert order["loc"]["delta"] == 0.0 and order["loc"]["verdict"] == "no difference"
    assert order["loc"]["ci"][0] <= 0.0 <= order["loc"]["ci"][1]
    assert "pairwise" not in row["probes"]["context"]


def test_headline_states_each_claim_on_its_kind(tmp_path):
    from propy.reports.headline import claim_lines, probe_markdown

    e = {"delta": -26.0, "ci": [-35.0, -18.0], "verdict": "loss"}
    comparisons = {
        "tables": {
            "depth": [{"variant": "depth1", "reference": "full", "probes": {"composition": {"loc": e}}}],
            "zero_shot": [{"variant": "zs", "reference": "full"}],
        }
    }
    lines = claim_lines(comparisons)
    assert lines[-1] == (
        "- Pyramid depth: depth1 vs full on composition localisation: -26.0 points [-35.0, -18.0], loss."
    )
    assert claim_lines({"tables": {"zero_shot": []}}) == []
    params = load_params(write_tiny_params(tmp_path / "params.yaml"))
    pooled = {
        "full": {
            "probes": {
                "order": {"n": 4, "pairwise": 75.0, "ci": [50.0, 100.0], "loc_IoU0.5": 25.0},
                "context": {"n": 2, "loc_IoU0.5": 50.0},
            }
        },
        "zs": {},
    }
    table = probe_markdown(params, pooled)
    assert "test queries per kind: order 4, context 2" in table[1]
    assert table[-1] == "| full | 75.0 [50.0, 100.0] / 25 | - / 50 |"
    assert probe_markdown(params, {"zs": {}}) == []


def claims_params(root: Path, tests: dict, worse: dict | None = None):
    """The ``study`` fixture's settings with ``tests`` added to the claims (tiny's own: vs_maxframe)."""
    return load_params(
        write_tiny_params(
            root / "claims.yaml",
            {
                "study": {
                    "trained": ["tiny", "worse"],
                    "seeds": [3, 4],
                    "zero_shot": ["zs_maxframe"],
                    "ablations": {"t": ["tiny", "worse"]},
                },
                "variants": {"worse": {"model": {"interaction": "none"}, **(worse or {})}},
                "claims": {"tests": tests},
            },
        )
    )


def test_claims_are_tested_once_each_and_holm_corrected(study):
    from propy.evaluation.claims import bootstrap_p_value
    from propy.evaluation.metrics import bootstrap_replicates, sumr_per_query

    _, root = study
    claim = {"claim": "c", "variant": "tiny", "kind": "all", "metric": "SumR"}
    params = claims_params(
        root, {"vs_worse": {**claim, "against": "worse"}, "vs_meanpool": {**claim, "against": "zs_meanpool"}}
    )
    comparisons = pool(params, root / "metrics", root / "results", root / "pooled", root / "pooled_results")
    claims = json.loads((root / "pooled" / "claims.json").read_text())
    by_name = {c["name"]: c for c in claims["claims"]}
    assert list(by_name) == ["vs_maxframe", "vs_worse", "vs_meanpool"] and claims["tests_run"] == 2
    # zs_meanpool is a variant but not in the study: skipped, saying why, and left out of Holm's family
    skipped = by_name["vs_meanpool"]
    assert skipped["verdict"] == "skipped" and "'zs_meanpool' not in study" in skipped["note"]
    # tiny ranks every query first at both seeds, worse never within R@4: every replicate is +400,
    # so p = 2 / 2001, doubled by Holm over 2 tests, and the SE (hence the MDE) is 0
    worse = by_name["vs_worse"]
    assert (worse["delta"], worse["ci"], worse["se"], worse["mde"], worse["n"]) == (400.0, [400.0, 400.0], 0.0, 0.0, 3)
    assert worse["p"] == pytest.approx(2 / 2001) and worse["p_holm"] == pytest.approx(4 / 2001)
    assert worse["verdict"] == "supported" and worse["primary_test"] == "tiny - worse: SumR, all queries"
    # zs_maxframe finds q1 only: Δ = 400 - 400/3; its p-value comes from the same bootstrap as the interval
    maxframe = by_name["vs_maxframe"]
    ranks = {
        run: [json.loads(line)["rank"] for line in (root / "results" / run / "rankings.jsonl").open()]
        for run in ("tiny-s3", "zs_maxframe")
    }
    replicates = bootstrap_replicates(
        sumr_per_query(np.array([ranks["tiny-s3"]] * 2), [1, 2, 3, 4]),
        sumr_per_query(np.array(ranks["zs_maxframe"]), [1, 2, 3, 4]),
        2000,
    )
    assert maxframe["delta"] == pytest.approx(800 / 3)
    assert maxframe["p"] == pytest.approx(bootstrap_p_value(replicates))
    assert maxframe["p_holm"] == pytest.approx(max(2 * worse["p"], maxframe["p"]))
    assert maxframe["verdict"] == ("supported" if maxframe["p_holm"] <= 0.05 else "not shown")
    assert maxframe["alpha_holm"] == 0.05 and worse["alpha_holm"] == 0.025
    # every exploratory comparison carries its MDE (unadjusted level 0.05, power 0.8)
    (row,) = comparisons["tables"]["t"]
    assert row["mde"] == 0.0 and comparisons["tables"]["zero_shot"][0]["mde"] > 0


def test_a_best_epoch_in_the_first_fifth_is_flagged(study):
    _, root = study
    # every run's checkpoint is from epoch 2: flagged for worse (10 epochs: limit 2), not for tiny (2 epochs)
    params = claims_params(root, {}, worse={"train": {"epochs": 10}})
    pool(params, root / "metrics", root / "results", root / "pooled", root / "pooled_results")
    worse = json.loads((root / "pooled" / "worse.json").read_text())["early_best"]
    assert worse == {"epochs": 10, "limit": 2.0, "runs": ["worse-s3", "worse-s4"]}
    assert json.loads((root / "pooled" / "tiny.json").read_text())["early_best"]["runs"] == []
    assert "early_best" not in json.loads((root / "pooled" / "zs_maxframe.json").read_text())


def test_localisation_claims_are_judged_on_moments_both_can_reach(tmp_path):
    from propy.evaluation.seed_pooling import Runs, judge_claims

    kinds = ["context"] * 4 + ["order"]
    wins = np.full((1, 5), 0.5)
    # a reaches moments 0, 1, 3; b reaches 0 and 3: only those two are judged, where a localises both
    # and b one (Δ = 100 - 50); over all four context moments it would be 75 - 50
    a = Runs(
        np.ones((1, 5), int),
        kinds,
        wins,
        np.array([[True, False, True, True, False]]),
        np.array([True, True, False, True, True]),
    )
    b = Runs(
        np.ones((1, 5), int),
        kinds,
        wins,
        np.array([[False, True, False, True, False]]),
        np.array([True, False, False, True, True]),
    )
    params = load_params(
        write_tiny_params(
            tmp_path / "params.yaml",
            {
                "claims": {
                    "tests": {
                        "vs_maxframe": {
                            "claim": "interaction localises",
                            "variant": "tiny",
                            "against": "zs_maxframe",
                            "kind": "context",
                            "metric": "loc",
                        }
                    }
                }
            },
        )
    )
    result = judge_claims({"tiny": a, "zs_maxframe": b}, params)
    (claim,) = result["claims"]
    assert claim["n"] == 2 and claim["delta"] == 50.0
    assert claim["ceiling"] == {"tiny": 75.0, "zs_maxframe": 50.0}
    assert claim["primary_test"] == (
        "tiny - zs_maxframe: localisation (%) on the moments both can reach, context queries"
    )
    assert result["tests_run"] == 1 and claim["alpha_holm"] == 0.05
    # a dataset without query kinds cannot judge a claim on one kind
    plain = Runs(np.ones((1, 5), int), None, None, None)
    (skipped,) = judge_claims({"tiny": plain, "zs_maxframe": plain}, params)["claims"]
    assert skipped["verdict"] == "skipped" and "no query kinds" in skipped["note"]


def test_the_readme_headline_is_the_committed_study():
    """README.md's synthetic block is what `propy headline` makes from the committed pooled metrics (so the
    numbers a reader sees first are the study's, not typed or left over from an older run)."""
    from propy.config import load_params
    from propy.reports.headline import headline_markdown, markers

    repo = Path(__file__).resolve().parents[1]
    params = load_params(repo / "params.yaml")
    start, end = markers(params.dataset)
    readme = (repo / "README.md").read_text(encoding="utf-8")
    block = readme.split(start, 1)[1].split(end, 1)[0].strip("\n")
    assert block == headline_markdown(params, repo / "metrics" / params.dataset / "pooled")
