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
    """BPE tokens of the default test split's queries and of its captions at each gap, and the captions."""
    videos = sample_split(DEFAULT, "test")
    bpe = SimpleTokenizer()
    canonical = sorted({c["caption"] for v in videos for c in captions(v, DEFAULT.fps, "test")})
    queries = {t for r in split_records(videos, DEFAULT.fps).records for t in bpe.encode(r.desc)}
    words = {gap: {t for c in canonical for t in bpe.encode(reword(c, gap))} for gap in range(len(GAPS))}
    function = {t for w in FUNCTION_WORDS for t in bpe.encode(w)}
    return canonical, queries - function, words


def test_what_each_gap_shares_with_the_queries_in_bpe_tokens(split_words):
    canonical, content, words = split_words
    colours_shapes = {t for c in canonical for t in SimpleTokenizer().encode(" ".join(c.split()[1:3]))}
    assert content <= words[0] and content <= words[1]  # every content word of a query is pre-trained
    assert content & words[2] == colours_shapes & content  # only the objects: no end-state word
    assert content & words[3] == set()  # nothing but function words


@pytest.mark.parametrize("gap", range(len(GAPS)))
def test_rewording_keeps_distinct_captions_distinct(split_words, gap):
    canonical, _, _ = split_words
    assert len({reword(c, gap) for c in canonical}) == len(canonical)


def test_a_caption_in_another_form_is_an_error_naming_where():
    with pytest.raises(DataError, match=r"captions.jsonl:7: caption 'a red blob' is not in the synthetic"):
        reword("a red blob", 2, "captions.jsonl:7")
    with pytest.raises(DataError, match=r"'a red circle is sideways'"):
        reword("a red circle is sideways", 1)


def test_the_rule_picks_the_largest_gap_keeping_the_share_of_the_best():
    rows = [
        {"gap": 0, "trained_val_SumR": 200.0},
        {"gap": 1, "trained_val_SumR": 210.0},
        {"gap": 2, "trained_val_SumR": 190.0},  # 190 >= 0.9 * 210 = 189
        {"gap": 3, "trained_val_SumR": 120.0},
    ]
    assert choose_gap(rows, 0.9) == 2
    assert choose_gap(rows, 0.95) == 1
    assert choose_gap(rows, 0.5) == 3


def test_gap_sweep_pretrains_per_level_and_scores_on_validation(tiny_bench, tmp_path, capsys):
    params = write_tiny_params(
        tmp_path / "params.yaml",
        {
            "pretrain_clip": {"epochs": 1, "batch_size": 16},
            "train": {"epochs": 1},
            "sweep": {"caption_gaps": [0, 3], "caption_gap_keep": 0.9},
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
    assert result["chosen"] == choose_gap(result["rows"], 0.9)
    first = [r["zero_shot_accuracy"] for r in result["rows"]]
    assert main(args) == 0  # a finished level is reused, not pre-trained again
    assert [r["zero_shot_accuracy"] for r in json.loads(out.read_text())["rows"]] == first
    assert f"chooses caption gap {result['chosen']}" in capsys.readouterr().out
