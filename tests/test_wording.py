"""The caption gap (propy.data.wording): worked examples, what each level shares with the queries
in CLIP's own BPE tokens, and the rule and sweep that choose the default on validation."""

from __future__ import annotations

import json

import pytest
from open_clip.tokenizer import SimpleTokenizer

from propy.cli import main
from propy.data.synth import captions, sample_split, split_records
from propy.data.wording import EXAMPLES, GAPS, reword
from propy.errors import DataError
from propy.train.gap_sweep import choose_gap
from tests.conftest import layout_args, write_tiny_params
from tests.test_synth import DEFAULT

# words of the queries' sentence form that say nothing about a visual state
FUNCTION_WORDS = {"a", "an", "then", "ends", "just", "after", ","}


@pytest.mark.parametrize(
    "caption, expected",
    [
        (
            "a red circle is on the left and big",
            [
                "a red circle is on the left and big",
                "a photo of a red circle, on the left, big",
                "a photo of a red circle, west, large",
                "a photo of a crimson disc, west, large",
            ],
        ),
        (
            "an orange triangle",
            [
                "an orange triangle",
                "a photo of an orange triangle",
                "a photo of an orange triangle",
                "a photo of an amber wedge",
            ],
        ),
        (
            "a grey bar is at the bottom and small",
            [
                "a grey bar is at the bottom and small",
                "a photo of a grey bar, at the bottom, small",
                "a photo of a grey bar, south, tiny",
                "a photo of an ashen stick, south, tiny",
            ],
        ),
    ],
)
def test_each_gap_rewords_a_caption_as_worked_out_by_hand(caption, expected):
    assert [reword(caption, gap) for gap in range(len(GAPS))] == expected
    assert [reword(EXAMPLES[0], gap) for gap in range(len(GAPS))] == list(EXAMPLES)


@pytest.fixture(scope="module")
def split_words():
    """The default test split's distinct captions, the BPE tokens of its queries' content words, of its
    captions at each gap, and of the captions' colours and shapes."""
    videos = sample_split(DEFAULT, "test")
    bpe = SimpleTokenizer()
    canonical = sorted({c["caption"] for v in videos for c in captions(v, DEFAULT.fps, "test")})
    queries = {t for r in split_records(videos, DEFAULT.fps).records for t in bpe.encode(r.desc)}
    words = {gap: {t for c in canonical for t in bpe.encode(reword(c, gap))} for gap in range(len(GAPS))}
    function = {t for w in FUNCTION_WORDS for t in bpe.encode(w)}
    objects = {t for c in canonical for t in bpe.encode(" ".join(c.split()[1:3]))}  # colour and shape
    return canonical, queries - function, words, objects


def test_what_each_gap_shares_with_the_queries_in_bpe_tokens(split_words):
    _, content, words, objects = split_words
    assert content <= words[0] and content <= words[1]  # every content word of a query is pre-trained
    assert content & words[2] == objects & content  # only the objects: no end-state word
    assert content & words[3] == set()  # nothing but function words


@pytest.mark.parametrize("gap", range(len(GAPS)))
def test_rewording_keeps_distinct_captions_distinct(split_words, gap):
    canonical = split_words[0]
    assert len({reword(c, gap) for c in canonical}) == len(canonical)


def test_a_caption_in_another_form_is_an_error_naming_where():
    with pytest.raises(DataError, match=r"captions.jsonl:7: caption 'a red blob' is not in the synthetic"):
        reword("a red blob", 2, "captions.jsonl:7")
    with pytest.raises(DataError, match=r"'a red circle is sideways'"):
        reword("a red circle is sideways", 1)


def test_the_rule_picks_the_smallest_gap_from_the_least_whose_clip_stays_competent():
    rows = [
        {"gap": 0, "zero_shot_accuracy": 95.0},
        {"gap": 1, "zero_shot_accuracy": 96.0},
        {"gap": 2, "zero_shot_accuracy": 89.0},  # 6 points below gap 0
        {"gap": 3, "zero_shot_accuracy": 91.0},  # 4 points below
    ]
    assert choose_gap(rows, 2, 5.0) == 3
    assert choose_gap(rows, 2, 6.0) == 2
    assert choose_gap(rows, 1, 0.0) == 1
    assert choose_gap(rows, 2, 1.0) is None


def test_gap_sweep_pretrains_per_level_and_scores_on_validation(tiny_bench, tmp_path, capsys):
    params = write_tiny_params(
        tmp_path / "params.yaml",
        {
            "pretrain_clip": {"epochs": 1, "batch_size": 16},
            "train": {"epochs": 1},
            "sweep": {"caption_gaps": [0, 3], "caption_gap_min": 3, "caption_gap_tolerance": 100.0},
        },
    )
    out, models = tmp_path / "gap_sweep.json", tmp_path / "models"
    args = ["gap-sweep", "--params", str(params), *layout_args(tiny_bench), "--out", str(out), "--models", str(models)]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert [r["gap"] for r in result["rows"]] == [0, 3] and result["split"] == "val"
    for row in result["rows"]:
        assert (models / f"gap{row['gap']}" / "clip" / "clip.pt").is_file()
        assert 0 <= row["zero_shot_accuracy"] <= 100 and row["best_epoch"] == 1
        assert all(0 <= row[f"{z}_val_SumR"] <= 400 for z in ("zs_meanpool", "zs_maxframe"))
    assert result["chosen"] == 3  # every accuracy is within 100 points
    first = [r["zero_shot_accuracy"] for r in result["rows"]]
    assert main(args) == 0  # a finished level is reused, not pre-trained again
    assert [r["zero_shot_accuracy"] for r in json.loads(out.read_text())["rows"]] == first
    assert "chooses caption gap 3" in capsys.readouterr().out
