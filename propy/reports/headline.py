"""The README's headline table, generated from the pooled metrics.

Each dataset has its own block in README.md, between ``<!-- headline:<dataset>:start -->`` and
``<!-- headline:<dataset>:end -->``, rewritten from ``metrics/<dataset>/pooled`` (committed with
the study), so no number in it is typed by hand, a test can check that it matches the committed
metrics, and a study on another dataset never replaces the synthetic study's numbers. It states the machine
and package versions that produced the numbers.
"""

from __future__ import annotations

import re
from pathlib import Path

from propy.config import Params
from propy.errors import DataError
from propy.reports.tables import probe_table, to_markdown, verdict_table
from propy.reports.text import claim_sentences, learnable_sentence
from propy.runtime.files import read_json


def markers(dataset: str) -> tuple[str, str]:
    """The comments that open and close ``dataset``'s headline block."""
    return f"<!-- headline:{dataset}:start -->", f"<!-- headline:{dataset}:end -->"


def _row(name: str, m: dict, delta: dict | None, recalls: list[str]) -> str:
    low, high = m["SumR_ci"]
    change = ""
    if delta is not None:
        d_low, d_high = delta["ci"]
        change = f"{delta['delta_SumR']:+.1f} [{d_low:+.1f}, {d_high:+.1f}] {delta['verdict']}"
    values = " | ".join(f"{m[k]:.1f}" for k in recalls)
    return (
        f"| {name} | {len(m['runs'])} | {values} | {m['SumR']:.1f} ± {m['sd']['SumR']:.1f} "
        f"[{low:.1f}, {high:.1f}] | {change} |"
    )


def headline_markdown(params: Params, metrics: Path) -> str:
    """The table (every variant of the study, test split) and the line saying where it was made."""
    comparisons = read_json(metrics / "comparisons.json", "missing (written by `propy pool`; run `make study`)")
    deltas = {row["variant"]: row for rows in comparisons["tables"].values() for row in rows}
    names = [*params.study.trained, *params.study.zero_shot]
    pooled = {n: read_json(metrics / f"{n}.json", "missing (written by `propy pool`; run `make study`)") for n in names}
    recalls = [f"R{k}" for k in params.eval.ks]
    lines = [
        f"| variant | runs | {' | '.join(recalls)} | SumR mean ± sd [95% CI] | Δ SumR vs {comparisons['reference']} "
        "[95% CI] |",
        "|---|---|" + "---|" * len(recalls) + "---|---|",
        *(_row(n, pooled[n], deltas.get(n), recalls) for n in names),
    ]
    lines += verdict_markdown(params, metrics)
    learnable = learnable_sentence(read_json(metrics / "claims.json", "pool")["claims"], probe_table(names, metrics))
    lines += (["", learnable] if learnable else []) + probe_markdown(params, pooled) + claim_lines(comparisons)
    env = pooled[names[0]].get("environment")
    if env is None:
        raise DataError(f"{metrics / (names[0] + '.json')}: no 'environment' recorded; re-run `make study`")
    versions = ", ".join(f"{k} {v}" for k, v in env["packages"].items())
    first = pooled[names[0]]
    lines += [
        "",
        f"{params.dataset} test split: {first['num_queries']:.0f} queries, {first['num_videos']:.0f} videos; "
        f"seeds {', '.join(map(str, comparisons['seeds']))}; intervals: {comparisons['samples']} bootstrap samples "
        f"over queries and seeds. Produced on {env['cpu']} ({env['cores']} cores), Python {env['python']}, "
        f"{versions}.",
    ]
    return "\n".join(lines)


def probe_markdown(params: Params, pooled: dict[str, dict]) -> list[str]:
    """Per variant and query kind: pairwise accuracy against the rival [95% CI] and localisation."""
    names = [n for n in pooled if pooled[n].get("probes")]
    if not names:
        return []
    kinds = list(pooled[names[0]]["probes"])
    loc = f"loc_IoU{params.eval.probe_iou:g}"

    def cell(p: dict) -> str:
        pair = f"{p['pairwise']:.1f} [{p['ci'][0]:.1f}, {p['ci'][1]:.1f}]" if "pairwise" in p else "-"
        return f"{pair} / {p[loc]:.0f}"

    counts = ", ".join(f"{k} {pooled[names[0]]['probes'][k]['n']}" for k in kinds)
    return [
        "",
        f"Rival probes (test queries per kind: {counts}): pairwise accuracy against the designed rival, %, "
        f"chance 50 [95% CI] / share whose best own-video event has IoU >= {params.eval.probe_iou:g} "
        "with the moment, %.",
        "",
        f"| variant | {' | '.join(kinds)} |",
        "|---|" + "---|" * len(kinds),
        *(f"| {n} | " + " | ".join(cell(pooled[n]["probes"][k]) for k in kinds) + " |" for n in names),
    ]


def verdict_markdown(params: Params, metrics: Path) -> list[str]:
    """The pre-registered tests (``claims.json``): the only verdicts the study gives."""
    table = verdict_table(metrics)
    return [
        "",
        f"Verdicts: one pre-registered test per claim (params.yaml `claims`), Holm-corrected at family-wise "
        f"level {params.claims.alpha:g}; MDE = the smallest effect the test detects with "
        f"{100 * params.claims.power:.0f}% power; a localisation claim is judged on the moments both variants' "
        "proposals can reach (ceiling: the share each can reach).",
        "",
        to_markdown(table.set_index("claim")).rstrip(),
    ]


def claim_lines(comparisons: dict) -> list[str]:
    """One bullet per compared variant: its change on the kind that isolates its claim (exploratory)."""
    lines = [f"- {sentence}" for sentence in claim_sentences(comparisons)]
    return (
        [
            "",
            "Exploratory, not pre-registered (no correction for the many comparisons): each ablation on the "
            "query kind that isolates it (change from the reference, 95% CI over queries and seeds):",
            "",
            *lines,
        ]
        if lines
        else []
    )


def replace_block(text: str, block: str, where: str, dataset: str) -> str:
    """``text`` with ``dataset``'s headline block replaced by ``block``; a dataset without a block yet
    gets a new one (under its own heading) after the last block of another dataset."""
    start, end = markers(dataset)
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: f"{start}\n{block}\n{end}", text)
    ends = list(re.finditer(r"<!-- headline:[A-Za-z0-9_-]+:end -->", text))
    if not ends:
        raise DataError(
            f"{where}: no <!-- headline:<dataset>:start --> ... end block to put {dataset}'s headline after"
        )
    at = ends[-1].end()
    return f"{text[:at]}\n\n#### {dataset}\n\n{start}\n{block}\n{end}{text[at:]}"
