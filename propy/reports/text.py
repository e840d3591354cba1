"""The words of the report pages: their names, the terms they use, and the findings each page
opens with, written from the numbers (a sentence changes when its numbers change).

Findings are HTML paragraphs of class ``finding``; definitions a list of class ``terms``.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import pandas as pd

from propy.data.gallery import left_out_phrase
from propy.data.wording import GAPS
from propy.runtime.files import read_json

# Reading order of the pages: name -> (navigation label, what the page shows).
PAGES = {
    "index": ("Overview", "every variant's headline numbers and the study's main findings"),
    "data": ("Data", "the benchmark: how it is built, its splits, and what the model sees of a video"),
    "results": ("Results", "ProPy against zero-shot CLIP, by moment length and by query kind, and VCMR"),
    "ablations": ("Ablations", "what each part of ProPy changes: depth, interaction, components"),
    "qualitative": ("Examples", "queries chosen by rule, their top videos, event scores and attention masks"),
    "training": ("Training", "loss and validation curves, and why validation SumR is not test SumR"),
    "cost": ("Cost", "trainable parameters, training time and encoding speed per variant"),
}

TERMS = {
    "R@K": "recall at K: the share (%) of test queries whose true video is among the K best-scored "
    "videos of the test gallery",
    "SumR": "R@1 + R@5 + R@10 + R@100, the paper's headline number (0-400; higher is better)",
    "MedR": "median rank of the true video over the test queries (1 is best); MeanR is the mean rank",
    "seeds": "every trained variant is trained once per training seed; its numbers are the mean over "
    "those runs (a zero-shot baseline is one run)",
    "interval": "95% bootstrap interval: test queries and training seeds are both drawn again with "
    "replacement, so the interval covers what the finite test set and the choice of seeds "
    "can move; a difference whose interval holds 0 is reported as no difference",
    "Δ vs full": "the change in mean SumR from the headline variant, with a paired interval (the same "
    "queries drawn for both sides)",
    "query kinds": "groups of test queries by what tells the true video apart (defined below the table)",
    "unnormalised SumR": "SumR when events are scored by the raw dot product with the query instead of "
    "the cosine (the other of the two event normalisations evaluate reports)",
    "VCMR": "weakly-supervised video corpus moment retrieval: the events of every video are moment "
    "proposals (their time spans), ranked over the whole corpus; a hit is a proposal of the true "
    "video whose temporal IoU with the query's moment passes the threshold",
    "IoU": "temporal intersection over union of two time spans (1 = identical)",
    "moment/video": "length of the query's moment divided by the length of its video",
    "rank": "position of the true video when the test gallery is sorted by score (1 = first)",
    "hard negative": "a video the model ranks above the true one although it shows something else; here "
    "flagged when its best-matching event's description differs from the query in one word",
    "wall time": "elapsed time on the clock, what a user waits; on a shared machine it includes time other "
    "jobs held the cores",
    "CPU time": "processor time this process used (all its threads), which other jobs disturb least",
    "× CLIP": "a variant's encode time over CLIP's encode_image of the same frames in the same run (1 = as fast "
    "as CLIP); every variant runs CLIP's image tower and adds to it, so near or above 1 (ProPy's own "
    "attention kernel can make it slightly faster than open_clip's)",
    "Nf": "frames the model samples from each video (one per equal segment of the whole video, "
    "the segment's midpoint frame at test)",
    "ADI": "ancestor-descendant interaction: in ProPy's event attention, an event sees the events above and "
    "below it in the pyramid (its ancestors and descendants) and its own frames, no other event",
    "pairwise": "pairwise accuracy: the share (%) of test queries whose true video scores above its designed "
    "rival video (50% = chance)",
    "localisation": "the share (%) of test queries whose true video's best-scoring event overlaps the query's "
    "moment at IoU >= 0.5",
    "kind": "the model a variant builds (params.yaml's model.kind): propy is ProPy; every other kind is "
    "described on the line of the variant that builds it, below",
    "ablation": "a variant that takes one part of ProPy away or changes it, to test a claim of the paper",
    "control": "a variant beyond the paper built to succeed where ProPy should fail (here on frame order): "
    "it shows the benchmark can reward what the claim is about",
}

# The overview's glossary: these terms, then one line per variant; every page links to it.
GLOSSARY_TERMS = (
    "SumR",
    "R@K",
    "MedR",
    "VCMR",
    "ADI",
    "pairwise",
    "localisation",
    "kind",
    "ablation",
    "control",
    "seeds",
    "interval",
    "Δ vs full",
)
GLOSSARY_ANCHOR = "glossary"

KINDS = {
    "single": "a query about one event, no other video shows its object doing the opposite action",
    "motion": "a query about one event whose object does the opposite action in another video: only the "
    "frame order tells them apart",
    "multi": "a query describing 2-3 consecutive events",
    "appearance": '"A just after B"; its rival shows B then A in another colour (same shape and action): one '
    "frame of the moment suffices (the control)",
    "order": '"A just after B"; its rival shows B then A doing the opposite action, the same frames reversed '
    "in time: only frame order tells them apart",
    "composition": "consecutive events; its rival shows the same events spread apart: only an event "
    "spanning the whole run prefers the true video (pyramid depth)",
    "context": '"A just after B", the moment being A; its rival shows A and B apart: a coarse event '
    "over B and A matches the words but not the moment (interaction between events)",
}

INTERACTIONS = {
    "full": "ADI: an event sees its ancestors and descendants in the pyramid (and its own frames)",
    "descendants": "an event sees only the events below it",
    "ancestors": "an event sees only the events above it",
    "none": "an event sees no other event, only its own frames",
    "dense": "every event sees every event",
}


def findings(sentences: Sequence[str], items: Sequence[str] = ()) -> str:
    """The page's opening findings as one HTML paragraph, and ``items`` (one finding each) as a list
    under it."""
    out = f'<p class="finding"><b>What this page finds.</b> {" ".join(sentences)}</p>'
    if items:
        out += '<ul class="finding">' + "".join(f"<li>{item}</li>" for item in items) + "</ul>"
    return out


def terms(*names: str, extra: dict[str, str] | None = None) -> str:
    """Definitions of ``names`` (keys of TERMS, or of ``extra``) as an HTML list."""
    known = {**TERMS, **(extra or {})}
    items = "".join(f"<li><b>{escape(n)}</b>: {escape(known[n])}</li>" for n in names)
    return f'<ul class="terms">{items}</ul>'


def kinds_html(kinds: Sequence[str]) -> str:
    """Definitions of the query kinds present (a kind without one is listed as such)."""
    return terms(*kinds, extra={k: KINDS.get(k, "(no definition recorded)") for k in kinds})


def pages_html(names: Sequence[str]) -> str:
    """The pages as a linked list with what each shows."""
    items = "".join(
        f'<li><a href="{n}.html">{escape(PAGES.get(n, (n, ""))[0])}</a>: {escape(PAGES.get(n, (n, ""))[1])}</li>'
        for n in names
    )
    return f"<ul>{items}</ul>"


PAPER_NOTE = (
    "<p class=\"paper\"><b>The paper's ablations.</b> The paper's own ablation tables (arXiv 2508.19024) could "
    "not be retrieved for this study: neither the reference repository's README (BUAAPY/ProPy, which gives "
    "only the main PRVR and VCMR results) nor the stored copies of the paper that could be searched show them. "
    "Their deltas are therefore not shown next to ours; no number here comes from the paper.</p>"
)


def benchmark_design(generator_doc: str | None) -> str:
    """The synthetic benchmark's design as its generator documents it (``propy.data.synth``), or a
    line saying the dataset is not the synthetic one."""
    if generator_doc is None:
        return "This dataset is not the synthetic benchmark; see `propy convert` for where it comes from."
    return "As documented by its generator, `propy/data/synth.py`:\n\n" + generator_doc.strip()


def example_html(example: dict, gallery: int) -> str:
    """Heading of one qualitative example: kind, pick, query, rank; the rank-1 rival called out."""
    e = example
    out = (
        f"<h3>{escape(e['kind'])}, {e['pick']} ranked: \u201c{escape(e['query'])}\u201d</h3>"
        f"<p>True video {escape(e['vid_name'])} at rank {e['rank']} of {gallery}."
    )
    if "rival_text" in e:
        missing, extra = e["rival_words"]
        out += f" <b>Rank 1 is {escape(e['top10'][0])}</b>, whose event \u201c{escape(e['rival_text'])}\u201d " + (
            f"differs from the query only in \u201c{escape(' '.join(extra))}\u201d for "
            f"\u201c{escape(' '.join(missing))}\u201d: a hard negative."
            if e["rival_differs"]
            else "is its closest event to the query."
        )
    return out + "</p>"


def masks_caption(num_levels: int, used: dict[str, Sequence[str]] | None = None) -> str:
    """What each interaction lets an event attend to, under the mask figure: those of ``used``
    (interaction -> the study's variants using it, named), else every one defined."""
    shown = used if used is not None else {name: () for name in INTERACTIONS}
    items = "".join(
        f"<li><b>{escape(name)}</b>{' (' + escape(', '.join(v)) + ')' if v else ''}: {escape(INTERACTIONS[name])}</li>"
        for name, v in shown.items()
    )
    return (
        f"<p>Rows: the query events, top level first; columns: the events (thin blue lines separate the "
        f"{num_levels} pyramid levels), then the frames (right of the red line). Dark: may attend. Every "
        f"event always sees its own frames; the interactions differ in which events it sees (in brackets, "
        f"the study's variants that use each):</p><ul>{items}</ul>"
    )


def vcmr_note(reach: pd.DataFrame, kinds: dict[str, str], num_frames: int) -> str:
    """Why the zero-shot baselines' VCMR numbers look as they do, from the share of test queries
    each one's proposals can reach at all (``reports.vcmr_reach``)."""
    notes = []
    threshold = reach.index[len(reach) // 2]
    for variant, kind in kinds.items():
        if kind == "meanpool":
            notes.append(
                f"{variant} has one event, the whole video, so its IoU with a moment is the moment/video "
                f"ratio: at {threshold} it can reach only "
                f"{reach.loc[threshold, 'whole-video proposal']:.0f}% of the test queries."
            )
        elif kind == "maxframe":
            notes.append(
                f"{variant}'s events are single frames (1/{num_frames} of the video), so a moment longer "
                f"than a few frames caps its IoU: at {threshold} it can reach only "
                f"{reach.loc[threshold, 'one-frame proposal']:.0f}% of the test queries."
            )
    if not notes:
        return ""
    return (
        "<p><b>Two artefacts of the baselines.</b> " + " ".join(notes) + " The table below gives, per IoU "
        "threshold, the share of test queries each kind of proposal can reach at best.</p>"
    )


def machine_sentence(machine: dict[str, str]) -> str:
    return (
        "Encoding was timed on "
        + ", ".join(f"{k} {v}" for k, v in machine.items())
        + " (the machine that rendered this page); training times come from the training logs."
    )


def interval(low: float, high: float) -> str:
    return f"[{low:+.1f}, {high:+.1f}]"


def _difference(row, reference: str) -> str:
    """ "v scores +3.2 SumR [+0.4, +6.0] against full (higher)" / "... (no difference)"."""
    word = {"gain": "higher", "loss": "lower", "no difference": "no difference"}[row.verdict]
    return f"{row.variant} scores {row.delta:+.1f} SumR {interval(row.low, row.high)} against {reference} ({word})"


# --------------------------------------------------------------------------- per page


def _names(rows) -> str:
    return ", ".join(rows["variant"])


def overview_findings(metrics: pd.DataFrame, effects: pd.DataFrame, headline: str, num_queries: int) -> list[str]:
    """Headline SumR, the comparison with each zero-shot baseline, the ablations' tally and the
    positive controls and prior methods (``NOT_ABLATIONS``), which are not counted as ablations."""
    m = metrics.loc[headline]
    out = [
        f"On {num_queries} test queries, {headline} reaches SumR {m['SumR']:.1f} {m['SumR 95% CI']} "
        f"(mean of {m['runs']} training seed{'s' if m['runs'] != 1 else ''})."
    ]
    zero = effects[effects["claim"] == "zero_shot"]
    if len(zero):
        out.append("Zero-shot CLIP: " + "; ".join(_difference(r, headline) for r in zero.itertuples()) + ".")
    ablated = effects[(effects["claim"] != "zero_shot") & ~effects["claim"].isin(list(NOT_ABLATIONS))]
    if len(ablated):
        counts = ablated["verdict"].value_counts()
        out.append(
            f"Of {len(ablated)} ablated variants, {counts.get('loss', 0)} score below {headline}, "
            f"{counts.get('gain', 0)} above it and {counts.get('no difference', 0)} show no difference "
            f"(interval holds 0)."
        )
    for table, role in NOT_ABLATIONS.items():
        rows = effects[effects["claim"] == table]
        if len(rows):
            out.append(
                f"{role[0].upper()}{role[1:]}{'s' if len(rows) > 1 else ''} (not ablations): "
                + "; ".join(_difference(r, headline) for r in rows.itertuples())
                + "."
            )
    return out


def claim_verdict(claim: str, rows: pd.DataFrame, reference: str) -> str:
    """One sentence per table of study.ablations: which of its variants score below, level with and
    above the reference in test SumR (each by its 95% interval)."""
    parts = []
    lower, same, higher = (rows[rows["verdict"] == v] for v in ("loss", "no difference", "gain"))
    if len(lower):
        parts.append(f"{reference} scores higher than {_names(lower)}")
    if len(same):
        parts.append(f"no difference between {reference} and {_names(same)}")
    if len(higher):
        parts.append(f"{_names(higher)} score{'s' if len(higher) == 1 else ''} higher than {reference}")
    name = claim_name(claim)
    role = NOT_ABLATIONS.get(claim, "")
    what = f" ({role}s)" if role and role not in name else ""
    return f"{name[0].upper()}{name[1:]}{what}, by test SumR: {'; '.join(parts)}."


# Which query kind tests which claim, and by which measure (pairwise: retrieval against the designed
# rival; loc: the own video's best event on the moment). Tables of study.ablations not named here are
# judged on SumR only.
CLAIMS = {
    "depth": ("composition", "loc", "pyramid depth"),
    "interaction": ("context", "loc", "ancestor-descendant interaction"),
    "components": ("order", "pairwise", "temporal adapters and the other components"),
    "beyond_paper": ("order", "pairwise", "positive controls beyond the paper"),
}


# Tables of study.ablations whose variants are not ablations of ProPy -> what each of their variants is.
NOT_ABLATIONS = {"beyond_paper": "positive control", "prior_method": "prior method"}


def claim_name(table: str) -> str:
    """What a table of study.ablations tests, in words ("pyramid depth"); the table's name otherwise."""
    return CLAIMS[table][2] if table in CLAIMS else table.replace("_", " ")


def claim_sentences(comparisons: dict) -> list[str]:
    """One sentence per compared variant (``comparisons.json``): its change on the query kind that
    isolates its claim, with the interval and the verdict."""
    out = []
    for table, rows in comparisons["tables"].items():
        if table not in CLAIMS:
            continue
        kind, measure, claim = CLAIMS[table]
        for row in rows:
            e = row.get("probes", {}).get(kind, {}).get(measure)
            if e is None:
                continue
            what = "pairwise accuracy" if measure == "pairwise" else "localisation"
            out.append(
                f"{claim[0].upper()}{claim[1:]}: {row['variant']} vs {row['reference']} on {kind} {what}: "
                f"{e['delta']:+.1f} points [{e['ci'][0]:+.1f}, {e['ci'][1]:+.1f}], {e['verdict']}."
            )
    return out


def ablation_findings(effects: pd.DataFrame, reference: str) -> list[str]:
    """One sentence per table of study.ablations (``claim_verdict``), then the largest loss."""
    ablated = effects[effects["claim"] != "zero_shot"]
    out = [claim_verdict(claim, rows, reference) for claim, rows in ablated.groupby("claim", sort=False)]
    losses = ablated[ablated["verdict"] == "loss"]
    if len(losses):
        worst = losses.loc[losses["delta"].idxmin()]
        out.append(f"The largest loss: {_difference(worst, reference)}.")
    return out


def results_findings(effects: pd.DataFrame, kinds: pd.DataFrame | None, headline: str) -> list[str]:
    """The comparison with each baseline, and the headline's weakest and strongest query kind."""
    out = [f"{_difference(r, headline)}." for r in effects[effects["claim"] == "zero_shot"].itertuples()]
    if kinds is not None and len(kinds):
        own = kinds[kinds["variant"] == headline]
        low, high = own["SumR"].idxmin(), own["SumR"].idxmax()
        out.append(
            f"By query kind, {headline} is weakest on {low} queries (SumR {own.loc[low, 'SumR']:.1f}, "
            f"n = {own.loc[low, 'n']}) and strongest on {high} ({own.loc[high, 'SumR']:.1f}, "
            f"n = {own.loc[high, 'n']})."
        )
    return out


def data_findings(counts: pd.DataFrame, queries: pd.DataFrame, kinds: dict[str, str] | None) -> list[str]:
    """Videos generated and in the galleries per split (``tables.split_counts``: the videos left out
    named with why), the moments' length, the test queries per kind."""
    test = queries[queries["split"] == "test"]
    per_split = ", ".join(f"{s} {n}" for s, n in counts["videos"].items())
    galleries = ", ".join(f"{s} {n}" for s, n in counts["in gallery"].items())
    out = [f"{int(counts['videos'].sum())} videos ({per_split}) with {int(counts['queries'].sum())} queries."]
    left = int(counts["left out"].sum())
    if left:
        out.append(
            f"{left} of them have no query and are in no gallery (a probe is written only when it holds "
            f"in its own video alone and its rival keeps one; {int(counts['probes dropped'].sum())} probes "
            f"were dropped), so the galleries hold {galleries} videos."
        )
    out.append(
        f"A test query's moment covers {100 * test['ratio'].mean():.0f}% of its video on average; "
        f"{100 * (test['ratio'] < 0.2).mean():.0f}% of test queries cover less than a fifth."
    )
    if kinds:
        by_kind = pd.Series([kinds[d] for d in test["desc_id"] if d in kinds]).value_counts()
        out.append("Test queries by kind: " + ", ".join(f"{k} {n}" for k, n in by_kind.items()) + ".")
    return out


def training_findings(summary: pd.DataFrame, val_videos: int, test_videos: int, saturated: int) -> list[str]:
    """The evaluated epochs (each seed's best validation epoch, as pool recorded them), the final
    losses, and why validation SumR is not test SumR."""
    epochs = [e for row in summary["evaluated epochs"] for e in row]
    out = [
        f"The checkpoint evaluated on test is each seed's best validation epoch: epochs {min(epochs)} to "
        f"{max(epochs)} of {summary['epochs'].max()}; final losses (mean over seeds) from "
        f"{summary['final loss'].min():.2f} to {summary['final loss'].max():.2f}."
    ]
    out.append(
        f"The validation gallery has {val_videos} videos against {test_videos} at test, and R@100 is 100 "
        f"at every epoch for {saturated} of {len(summary)} variants: validation SumR only picks the epoch "
        f"and is not comparable with test SumR."
    )
    return out


def qualitative_findings(examples: Sequence[dict]) -> list[str]:
    wrong = [e for e in examples if e["rank"] > 1]
    out = [
        f"{len(examples)} queries chosen by rule (per query kind, the best and the worst ranked); "
        f"{len(wrong)} of them do not have their true video at rank 1."
    ]
    twins = [e for e in wrong if e.get("rival_differs")]
    if wrong:
        out.append(
            f"In {len(twins)} of those {len(wrong)}, the rank-1 video holds an event whose description "
            f"differs from the query in one word only (a hard negative)."
        )
    return out


def cost_findings(table: pd.DataFrame, headline: str, clip, batch: int) -> list[str]:
    """Parameters, epoch time and encode time of the headline against CLIP (``cost.cost_table``), and
    the one CLIP measurement (a ``Timing`` of ``batch`` videos) every ratio divides by."""
    row = table.loc[headline]
    cheapest = table["trainable parameters"].idxmin()
    return [
        f"{headline} trains {int(row['trainable parameters']):,} parameters ({row['trainable %']:.2f}% of the model); "
        f"{cheapest} trains the fewest ({int(table.loc[cheapest, 'trainable parameters']):,}).",
        f"An epoch of {headline} takes {row['s / epoch (wall)']:.1f} s (wall time, from the training logs); "
        f"encoding a video takes {row['× CLIP (wall)']:.2f} times the wall time and "
        f"{row['× CLIP (CPU)']:.2f} times the CPU time of CLIP encoding the same frames.",
        f"Every ratio divides by CLIP encoding the same frames, timed in the same run as every variant (called "
        f"in turn, median of {clip.repeats} repeats of {batch} videos): {1000 * clip.wall / batch:.1f} ms of wall "
        f"time per video (repeats {1000 * clip.wall_min / batch:.1f} to {1000 * clip.wall_max / batch:.1f}) "
        f"and {1000 * clip.cpu / batch:.1f} ms of CPU time.",
    ]


def glossary_html(variants: pd.DataFrame) -> str:
    """The overview's glossary: ``GLOSSARY_TERMS``, then every variant of the study with its role
    and what it changes (``tables.variant_glossary``); pages link to its anchor."""
    cell = '<td style="text-align:left;vertical-align:top">'
    rows = "".join(
        f"<tr>{cell}<b>{escape(v)}</b></td>{cell}{escape(r.role)}</td>{cell}{escape(r.meaning)}</td></tr>"
        for v, r in variants.iterrows()
    )
    return (
        f'<div id="{GLOSSARY_ANCHOR}" class="glossary" style="border:1px solid #bbb;padding:0.3em 1em;'
        f'background:#f8f8f8"><h2>Glossary</h2>{terms(*GLOSSARY_TERMS)}'
        f'<table><thead><tr><th style="text-align:left">variant</th><th style="text-align:left">role</th>'
        f'<th style="text-align:left">what it is (from params.yaml)</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


# The MDEs a design needs to see effects of the size papers report: SumR points, probe (percentage) points.
MDE_TARGETS = {"SumR": 5.0, "pairwise": 8.0, "loc": 8.0}


def projection_sentence(claims: list[dict], targets: dict[str, float]) -> str:
    """What the design projection says: at the largest design, how many tests reach their metric's
    MDE target (``targets``: metric -> points) and the range of MDEs at each number of seeds."""
    projected = [c for c in claims if "projection" in c]
    if not projected:
        return ""
    largest = max(p["test_queries"] for p in projected[0]["projection"])
    by_seeds: dict[int, list[float]] = {}
    for c in projected:
        for p in c["projection"]:
            if p["test_queries"] == largest:
                by_seeds.setdefault(p["seeds"], []).append(p["mde"])
    most = max(by_seeds)
    reach = [
        c["name"]
        for c in projected
        if any(
            p["test_queries"] == largest and p["seeds"] == most and p["mde"] <= targets[c["metric"]]
            for p in c["projection"]
        )
    ]
    spans = "; ".join(f"{s} seeds: {min(v):.1f} to {max(v):.1f}" for s, v in sorted(by_seeds.items()))
    return (
        f"How large a study would see effects of a few points: each test's MDE projected to {largest} test queries "
        f"({spans}). Targets of {', '.join(f'{v:g} ({k})' for k, v in targets.items())} are met at "
        f"{largest} queries and {most} seeds by {len(reach)} of {len(projected)} tests"
        f"{' (' + ', '.join(reach) + ')' if reach else ''}. Where more queries barely move an MDE, the spread "
        "between training seeds sets it, and only more seeds lower it."
    )


def gap_phrase(caption_gap: int) -> str:
    """What the small CLIP's pre-training text knows of the queries at ``caption_gap``, for the pages."""
    return f"caption gap {caption_gap}: captions in {GAPS[caption_gap]}"


def gap_sweep_findings(path: str, used: int) -> str:
    """The gap sweep's rule, what it chose, whether the study uses it, and how the zero-shot baselines and
    the trained variant fare at the first level and the chosen one; one paragraph of HTML."""
    sweep = read_json(path, "no such file (written by `python -m propy gap-sweep`)")
    by_gap = {r["gap"]: r for r in sweep["rows"]}
    first, chosen = min(by_gap), sweep["chosen"]
    rule = (
        f"<p>Rule (params.yaml): the smallest caption gap from {sweep['least']} on ({GAPS[sweep['least']]}) at "
        f"which the CLIP's zero-shot caption accuracy on validation frames is at most {sweep['tolerance']:g} points "
        f"below gap {first}'s ({by_gap[first]['zero_shot_accuracy']:.1f}%): the CLIP still tells the visual states "
        "apart in its own words, but not in the queries'. It judges the CLIP alone, not the method under test. "
    )
    if chosen is None:
        return rule + "No level qualifies: the study's CLIP is not a fair zero-shot baseline.</p>"
    levels = [first, chosen] if chosen != first else [first]

    def scores(g: int) -> str:
        row = by_gap[g]
        zero = ", ".join(f"{z} {row[f'{z}_val_SumR']:.1f}" for z in sweep["zero_shot"])
        return f"gap {g}: {zero}; trained {sweep['variant']} {row['trained_val_SumR']:.1f}"

    agrees = (
        f"The study uses gap {used}, the rule's choice."
        if used == chosen
        else f"The study uses gap {used}, not the rule's choice {chosen}: params.yaml disagrees with this sweep."
    )
    return (
        rule + f"It chose gap {chosen} ({by_gap[chosen]['zero_shot_accuracy']:.1f}%). Validation SumR, "
        f"{'; '.join(scores(g) for g in levels)}. {agrees} Seed {sweep['seed']}, one run per level.</p>"
    )


def scope_sentence(
    num_queries: int, num_videos: int, dataset: str, caption_gap: int = 0, gallery: dict | None = None
) -> str:
    """What this benchmark can and cannot say, for the top of the overview; ``gallery`` (the evaluated
    metrics' accounting) adds what was annotated but left out."""
    if dataset != "synthetic":
        return (
            f"{dataset}: {num_queries} test queries over {num_videos} videos"
            f"{left_out_phrase(gallery) if gallery else ''}; the verdicts hold for this "
            "dataset, this CLIP and these settings."
        )
    return (
        f"The benchmark and its CLIP are synthetic and small ({num_queries} test queries over {num_videos} "
        f"videos; a CLIP of a few blocks pre-trained in the pipeline on frame captions, {gap_phrase(caption_gap)}"
        f"{', the words and form the queries use' if caption_gap == 0 else ''}): a verdict says whether a "
        "mechanism works when the signal it needs is present, not how ProPy fares on TVR, and its SumR is not "
        "comparable with the paper's. "
        + (
            "The zero-shot baselines know the query vocabulary, so they are stronger here than a web-trained "
            "CLIP on a real dataset."
            if caption_gap < 2
            else "No word a query uses for how an event ends is in the CLIP's pre-training text, as a web-trained "
            "CLIP never saw a PRVR dataset's queries: the zero-shot baselines are a starting point, not in-domain "
            "models (the training page's gap sweep shows the choice)."
        )
    )


def learnable_sentence(claims: list[dict], probes: pd.DataFrame | None, scope: str = "variant") -> str:
    """Whether each pairwise-judged claim's query kind can be learned here at all: if none of the variants
    in ``probes`` (``scope`` names them: "variant" for the whole study, controls, prior method and zero-shot
    baselines included) tells that kind's queries from their rivals better than chance (its interval
    above 50%), a "not shown" on it is no evidence against the claim."""
    if probes is None:
        return ""
    notes = []
    for c in claims:
        if c.get("metric") != "pairwise" or c["verdict"] == "skipped" or c["kind"] not in probes.index:
            continue
        rows = probes.loc[[c["kind"]]].sort_values("pairwise", ascending=False, kind="stable")
        above = rows[rows["low"] > 50]
        best = (above if len(above) else rows).iloc[0]
        shown = f"{best['variant']} {best['pairwise']:.1f}% [{best['low']:.1f}, {best['high']:.1f}]"
        if len(above):
            notes.append(f"{c['kind']} queries can be told from their rivals here (best: {shown})")
        else:
            notes.append(
                f"no {scope} tells {c['kind']} queries from their rivals better than chance (best: {shown}), so "
                f'the test of "{c["claim"]}" cannot show it on this benchmark: its verdict is no evidence '
                "against the claim"
            )
    joined = "; ".join(notes)
    return f"Can the benchmark show it? {joined[0].upper()}{joined[1:]}." if notes else ""
