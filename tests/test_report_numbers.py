"""Every number in the first paragraph of a report page is one the stage outputs it reports on hold.

The paragraph is written by executing the page's own notebook cells, with the values the renderer
injects, up to the cell that displays it; the numbers it may contain are worked out here,
independently, from the same files (the pooled metrics, comparisons.json, stats.json, the
annotations, the training logs, the rankings). An altered metrics file must make the check fail.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import nbformat
import numpy as np
import pytest
import yaml
from test_reports import write_study

from propy.config import Layout, load_params
from propy.reports.render import notebook_values

REPO = Path(__file__).resolve().parents[1]
# a number standing alone: not part of a name (depth1, R@100, test0) nor of a version (2.14.1)
NUMBER = re.compile(r"(?<![\w@.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w@]|\.\d)")
CONTROLS = {"beyond_paper", "prior_method"}  # tables of positive controls and prior methods: not ablations


def numbers(paragraph: str) -> list[str]:
    return NUMBER.findall(paragraph)


def unjustified(paragraph: str, sources: list[float]) -> list[str]:
    """The numbers of ``paragraph`` that no value of ``sources`` rounds to at their written precision."""
    out = []
    for token in numbers(paragraph):
        digits = len(token.split(".")[1]) if "." in token else 0
        value = float(token.replace(",", ""))
        if not any(abs(v - value) <= 0.5 * 10**-digits + 1e-9 for v in sources):
            out.append(token)
    return out


def first_paragraph(name: str, values: dict, monkeypatch) -> str:
    """Execute ``notebooks/<name>.ipynb``'s code cells with ``values`` for its parameters until one
    displays the page's findings; their text (the paragraph and any list of findings under it), tags
    removed."""
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **_: shown.extend(objs))
    book = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    scope: dict = {}
    for cell in book.cells:
        if cell.cell_type != "code":
            continue
        exec("\n".join(line for line in cell.source.splitlines() if not line.startswith("%")), scope)
        if "parameters" in cell.metadata.get("tags", []):
            scope.update({k: v for k, v in values.items() if k in scope})
        for obj in shown:
            found = re.search(
                r'<p class="finding">(.*?)</p>(<ul class="finding">.*?</ul>)?', getattr(obj, "data", "") or "", re.S
            )
            if found:  # the paragraph and the list of findings under it
                return html.unescape(re.sub(r"<[^>]+>", " ", found.group(0)))
    raise AssertionError(f"{name}: no cell displays a finding")


@pytest.fixture
def study(tmp_path):
    """write_study's outputs, a stats.json with one video per split left out of the gallery, and
    params.yaml naming its variants."""
    write_study(tmp_path)
    splits = {
        split: {"videos": 5, "queries": 8, "dropped": {"order": 1, "appearance": 1}}
        for split in ("train", "val", "test")
    }
    (tmp_path / "data" / "stats.json").write_text(json.dumps({"splits": splits}))
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["study"].update(
        trained=["full", "depth1"],
        seeds=[42, 43],
        zero_shot=["zs_meanpool", "zs_maxframe"],
        ablations={"depth": ["depth1", "full"]},
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path


def values(root: Path, name: str) -> dict:
    folders = {
        "metrics": root / "metrics",
        "logs": root / "logs",
        "results": root / "results",
        "runs": root / "runs",
        "out": root / "reports",
    }
    params = load_params(root / "params.yaml")
    return notebook_values(params, str(root / "params.yaml"), name, Layout(root / "data", root / "cache"), folders)


def read(path: Path):
    return json.loads(path.read_text())


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def comparison_numbers(comparisons: dict) -> list[float]:
    out = []
    for rows in comparisons["tables"].values():
        for r in rows:
            out += [r["delta_SumR"], *r["ci"]]
            out += [x for kinds in r.get("probes", {}).values() for e in kinds.values() for x in (e["delta"], *e["ci"])]
    return out


def expected(root: Path, name: str) -> list[float]:
    """Every number page ``name``'s first paragraph may hold, from the files it reports on."""
    params = load_params(root / "params.yaml")
    study, headline = params.study, params.report.headline
    pooled = {v: read(root / "metrics" / f"{v}.json") for v in [*study.trained, *study.zero_shot]}
    comparisons = read(root / "metrics" / "comparisons.json")
    annotations = {s: jsonl(root / "data" / "annotations" / f"{s}.jsonl") for s in ("train", "val", "test")}
    kinds = read(root / "data" / "query_kinds.json")
    if name == "index":
        m = pooled[headline]
        ablated = [r for t, rows in comparisons["tables"].items() if t not in CONTROLS | {"zero_shot"} for r in rows]
        verdicts = [sum(r["verdict"] == v for r in ablated) for v in ("loss", "gain", "no difference")]
        return [
            comparisons["num_queries"],
            m["SumR"],
            *m["SumR_ci"],
            len(m["runs"]),
            len(ablated),
            *verdicts,
            *comparison_numbers(comparisons),
        ]
    if name == "ablations":
        return comparison_numbers(comparisons)
    if name == "data":
        stats = read(root / "data" / "stats.json")["splits"]
        gallery = {s: len({r["vid_name"] for r in rows}) for s, rows in annotations.items()}
        test = annotations["test"]
        ratios = np.array([(r["ts"][1] - r["ts"][0]) / r["duration"] for r in test])
        by_kind = [sum(kinds[r["desc_id"]] == k for r in test) for k in set(kinds.values())]
        return [
            sum(s["videos"] for s in stats.values()),
            *(s["videos"] for s in stats.values()),
            sum(s["queries"] for s in stats.values()),
            *gallery.values(),
            sum(s["videos"] - gallery[k] for k, s in stats.items()),
            sum(sum(s["dropped"].values()) for s in stats.values()),
            100 * ratios.mean(),
            100 * (ratios < 0.2).mean(),
            *by_kind,
        ]
    if name == "training":
        logs = {v: [read(root / "logs" / f"{v}-s{s}.json") for s in study.seeds] for v in study.trained}
        final = [np.mean([run[-1]["loss"] for run in runs]) for runs in logs.values()]
        saturated = sum(all(e["val_R100"] >= 100 for run in runs for e in run) for runs in logs.values())
        epochs = [e for v in study.trained for e in pooled[v]["epoch"]]
        return [
            *epochs,
            max(len(run) for runs in logs.values() for run in runs),
            *final,
            len({r["vid_name"] for r in annotations["val"]}),
            len({r["vid_name"] for r in annotations["test"]}),
            saturated,
            len(study.trained),
            100.0,
        ]  # 100: the R@100 ceiling the sentence names
    if name == "results":
        out = comparison_numbers(comparisons)
        runs = [f"{headline}-s{s}" for s in study.seeds]
        ranks = [{r["desc_id"]: r["rank"] for r in jsonl(root / "runs" / run / "rankings.jsonl")} for run in runs]
        for kind in set(kinds.values()):
            ids = [d for d in ranks[0] if kinds[d] == kind]
            out += [
                len(ids),
                np.mean([sum(100 * np.mean([r[d] <= k for d in ids]) for k in params.eval.ks) for r in ranks]),
            ]
        return out
    raise KeyError(name)


PAGES = ("index", "ablations", "data", "training", "results")


@pytest.mark.parametrize("name", PAGES)
def test_every_number_of_the_first_paragraph_is_in_the_files(study, name, monkeypatch):
    paragraph = first_paragraph(name, values(study, name), monkeypatch)
    assert len(numbers(paragraph)) >= 3, paragraph
    assert unjustified(paragraph, expected(study, name)) == [], paragraph


def test_an_altered_metrics_file_fails_the_check(study, monkeypatch):
    paragraph = first_paragraph("index", values(study, "index"), monkeypatch)
    ablations = first_paragraph("ablations", values(study, "ablations"), monkeypatch)
    assert unjustified(paragraph, expected(study, "index")) == []
    path = study / "metrics" / "full.json"
    path.write_text(json.dumps({**read(path), "SumR": 181.3}))  # the page above says 180.0
    assert unjustified(paragraph, expected(study, "index")) == ["180.0"]
    path.write_text(json.dumps({**read(path), "SumR_ci": [171.0, 190.0]}))  # ... and [170.0, 190.0]
    assert unjustified(paragraph, expected(study, "index")) == ["180.0", "170.0"]
    comparisons = study / "metrics" / "comparisons.json"
    altered = read(comparisons)
    altered["tables"]["depth"][0]["ci"] = [-18.0, -3.0]  # the ablations page says depth1 ... [-18.0, -2.0]
    comparisons.write_text(json.dumps(altered))
    assert unjustified(ablations, expected(study, "ablations")) == ["-2.0"]


def test_numbers_are_told_from_names_and_versions():
    text = "depth1 scores -1.4 SumR [-12.1, +8.7] at R@100 on 14,912 videos with torch 2.14.1+cu130 in test000 (18%)."
    assert numbers(text) == ["-1.4", "-12.1", "+8.7", "14,912", "18"]
    assert unjustified(text, [-1.43, -12.06, 8.7, 14912.0, 17.6]) == []
    assert unjustified(text, [-1.46, -12.06, 8.7, 14912.0, 17.6]) == ["-1.4"]
