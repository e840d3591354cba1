"""How far the small CLIP's pre-training captions are worded from the queries: the zero-shot knob.

A released CLIP learned its words from web captions, never from a PRVR dataset's
queries, so zero-shot CLIP is a starting point there, not an in-domain model.
The synthetic benchmark's frame captions (``propy.data.synth.state_caption``)
are written in the queries' own words; ``pretrain_clip.caption_gap`` rewords
them before pre-training, one step further from the queries at each level:

0. the queries' words and sentence form: "a red circle is on the left and big";
1. the same words in another sentence form: "a photo of a red circle, on the left, big";
2. positions and sizes in other words too: "a photo of a red circle, west, large";
   no word a query uses for an action's end state is ever seen in pre-training;
3. colours and shapes in other words too: "a photo of a crimson disc, west, large";
   only function words are shared with the queries.

Reworded captions name the same visual states, so every level teaches the image
tower the same distinctions; only what the frozen text tower knows of the
queries' words changes. ``propy gap-sweep`` measures zero-shot and trained
models at each level on the validation split (README, "The zero-shot baseline").
"""

from __future__ import annotations

import re

from propy.data.synth import COLOURS, FILLER_COLOUR, FILLER_SHAPES, SHAPES, STATE_WORDS
from propy.errors import DataError

GAPS = (
    "the queries' words and sentence form",
    "the queries' words in another sentence form",
    "another sentence form, positions and sizes in other words",
    "another sentence form, states, colours and shapes in other words",
)
EXAMPLES = (
    "a red circle is on the left and big",
    "a photo of a red circle, on the left, big",
    "a photo of a red circle, west, large",
    "a photo of a crimson disc, west, large",
)
# level 2: the end states; level 3 adds the objects. No replacement shares a BPE token with a query word.
STATE_SYNONYMS = {
    "on the left": "west",
    "on the right": "east",
    "at the top": "north",
    "at the bottom": "south",
    "small": "tiny",
    "big": "large",
}
COLOUR_SYNONYMS = {
    "red": "crimson",
    "green": "emerald",
    "blue": "navy",
    "yellow": "golden",
    "magenta": "fuchsia",
    "cyan": "turquoise",
    "white": "snowy",
    "orange": "amber",
    "purple": "violet",
    "pink": "rose",
    "grey": "ashen",
}
SHAPE_SYNONYMS = {
    "circle": "disc",
    "square": "box",
    "triangle": "wedge",
    "diamond": "rhombus",
    "cross": "plus",
    "ring": "hoop",
    "bar": "stick",
}
_STATES = sorted({w for low_high in STATE_WORDS.values() for w in (low_high[1], low_high[3])}, key=len, reverse=True)
_CANONICAL = re.compile(
    r"^an? (?P<colour>{c}) (?P<shape>{s})(?: is (?P<states>.+))?$".format(
        c="|".join([*COLOURS, FILLER_COLOUR]), s="|".join([*SHAPES, *FILLER_SHAPES])
    )
)


def parse(caption: str, where: str) -> tuple[str, str, list[str]]:
    """(colour, shape, states) of a caption written by ``synth.state_caption``; ``where`` names it in errors."""
    match = _CANONICAL.match(caption)
    states = match["states"].split(" and ") if match and match["states"] else []
    if match is None or any(s not in _STATES for s in states):
        raise DataError(
            f"{where}: caption {caption!r} is not in the synthetic benchmark's frame-state form "
            f'("a <colour> <shape> is <state> and <state>", states: {", ".join(_STATES)}); '
            "re-run `python -m propy synth`"
        )
    return match["colour"], match["shape"], states


def reword(caption: str, gap: int, where: str = "caption") -> str:
    """``caption`` (a canonical frame-state caption) at caption gap ``gap`` (0 returns it unchanged)."""
    if not 0 <= gap < len(GAPS):
        raise ValueError(f"caption gap {gap} is not one of 0..{len(GAPS) - 1}")
    colour, shape, states = parse(caption, where)
    if gap == 0:
        return caption
    if gap >= 2:
        states = [STATE_SYNONYMS[s] for s in states]
    if gap >= 3:
        colour, shape = COLOUR_SYNONYMS[colour], SHAPE_SYNONYMS[shape]
    article = "an" if colour[0] in "aeiou" else "a"
    return ", ".join([f"a photo of {article} {colour} {shape}", *states])
