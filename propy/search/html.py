"""One self-contained page to look at what a query found.

Per returned video: a thumbnail strip of each listed moment (frames decoded from the video file
with ``propy.data.video.read_video``, as square centre crops, i.e. what the model sees; embedded
as base64 JPEG so the page can be mailed or archived) and a timeline of every event's score, one
row per pyramid level, which shows where in the video the query matched and how sharply.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from propy.errors import DataError
from propy.runtime.files import atomic_write_text
from propy.search.engine import Hit, Moment, printable

THUMB = 112  # thumbnail side, pixels
STRIP = 6  # frames per moment
DECODE_FPS = 8.0  # frames decoded per second of video to pick thumbnails from ...
DECODE_MAX = 256  # ... at most (longer videos are sampled more sparsely)
WIDTH = 1000  # timeline width in SVG units
ROW = 16  # timeline row height


def strip_indices(moment: Moment, duration: float, count: int, frames: int) -> np.ndarray:
    """Indices of ``count`` frames evenly inside ``moment``, out of ``frames`` decoded uniformly
    over ``duration`` (frame j shows time (j + 0.5) * duration / frames, as ``read_video`` decodes)."""
    times = moment.start + (np.arange(count) + 0.5) * (moment.end - moment.start) / count
    return np.clip(np.floor(times / max(duration, 1e-9) * frames), 0, frames - 1).astype(np.int64)


def _jpeg(image: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _colour(value: float) -> str:
    """Pale yellow (low) to dark blue (high), ``value`` in [0, 1]."""
    low, high = np.array([255, 247, 188]), np.array([8, 48, 107])
    r, g, b = (low + (high - low) * float(np.clip(value, 0, 1))).round().astype(int)
    return f"rgb({r},{g},{b})"


def timeline_rows(spans: np.ndarray) -> np.ndarray:
    """Row of each event: pyramid levels (span lengths) longest first, and within a level as many
    rows as its events overlap (half-overlapping levels get two), so no box hides another."""
    lengths = np.round(spans[:, 1] - spans[:, 0], 6)
    rows = np.zeros(len(spans), dtype=np.int64)
    first = 0
    for length in sorted(set(lengths.tolist()), reverse=True):
        ends: list[float] = []  # end of the last box in each row of this level
        for e in sorted(np.flatnonzero(lengths == length), key=lambda e: spans[e, 0]):
            row = next((r for r, end in enumerate(ends) if end <= spans[e, 0] + 1e-9), len(ends))
            ends[row : row + 1] = [spans[e, 1]]
            rows[e] = first + row
        first += len(ends)
    return rows


def timeline(hit: Hit, low: float, high: float) -> str:
    """SVG: every event as a box over its span, coloured by score (``low``..``high``), rows as
    :func:`timeline_rows` lays them out; the listed moments outlined in red and numbered."""
    rows = timeline_rows(hit.spans)
    scale = WIDTH / max(hit.duration, 1e-9)
    height = ROW * (int(rows.max()) + 1)
    parts = [f'<svg viewBox="0 -2 {WIDTH} {height + 18}" width="100%" class="timeline">']
    for e, ((start, end), score) in enumerate(zip(hit.spans, hit.event_scores)):
        value = (score - low) / (high - low) if high > low else 1.0
        parts.append(
            f'<rect x="{start * scale:.1f}" y="{rows[e] * ROW}" width="{max((end - start) * scale - 1, 1):.1f}" '
            f'height="{ROW - 2}" fill="{_colour(value)}"><title>{start:.2f}-{end:.2f} s: '
            f"{score:.4f}</title></rect>"
        )
    for number, moment in enumerate(hit.moments, start=1):
        y = rows[moment.event] * ROW
        parts.append(
            f'<rect x="{moment.start * scale:.1f}" y="{y}" '
            f'width="{max((moment.end - moment.start) * scale - 1, 1):.1f}" '
            f'height="{ROW - 2}" fill="none" stroke="#d62728" stroke-width="2.5"/>'
            f'<text x="{moment.start * scale + 4:.1f}" y="{y + ROW - 4}" class="num">{number}</text>'
        )
    for tick in np.linspace(0, hit.duration, 6):
        parts.append(
            f'<text x="{min(tick * scale, WIDTH - 30):.1f}" y="{height + 14}" class="tick">{tick:.1f} s</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def strips(hit: Hit) -> str:
    """One JPEG strip per moment, or the reason the video cannot be decoded any more."""
    from propy.data.video import read_video

    try:
        video = read_video(hit.path, DECODE_FPS, DECODE_MAX, THUMB)
    except DataError as exc:
        return f'<p class="bad">no thumbnails: {html.escape(printable(str(exc)))}</p>'
    rows = []
    for number, moment in enumerate(hit.moments, start=1):
        index = strip_indices(moment, video.duration, STRIP, len(video.frames))
        image = np.concatenate(list(video.frames[index]), axis=1)
        rows.append(
            f"<figure><figcaption><b>{number}</b> {moment.start:.1f}-{moment.end:.1f} s, "
            f'score {moment.score:.4f}</figcaption><img src="{_jpeg(image)}" alt="moment {number}"></figure>'
        )
    return "".join(rows)


STYLE = """
body { font: 14px system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
h1 { font-size: 20px; } .meta { color: #666; }
section { border-top: 1px solid #ddd; padding: 12px 0; }
h2 { font-size: 15px; margin: 0 0 6px; word-break: break-all; }
figure { margin: 4px 0 8px; } figcaption { color: #444; margin-bottom: 2px; }
img { image-rendering: pixelated; height: 112px; }
.timeline { background: #fafafa; } .tick { font-size: 11px; fill: #555; }
.num { font-size: 11px; fill: #d62728; font-weight: bold; stroke: #fff; stroke-width: 3px;
       paint-order: stroke; }
.bad { color: #b00; }
"""


def page(query: str, hits: list[Hit], variant: str, gallery: int) -> str:
    scores = np.concatenate([h.event_scores for h in hits]) if hits else np.zeros(1)
    low, high = float(scores.min()), float(scores.max())
    sections = []
    for hit in hits:
        sections.append(
            f"<section><h2>{hit.rank}. {html.escape(hit.shown_path)}</h2>"
            f'<div class="meta">score {hit.score:.4f} · {hit.duration:.1f} s · '
            f"{len(hit.event_scores)} events</div>{strips(hit)}"
            f'<div class="meta">event scores (rows: pyramid levels, whole video on top; '
            f"colour {low:.3f} to {high:.3f})</div>{timeline(hit, low, high)}</section>"
        )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>propy search: {html.escape(query)}</title>"
        f"<style>{STYLE}</style></head><body><h1>“{html.escape(query)}”</h1>"
        f'<p class="meta">top {len(hits)} of {gallery} videos · model {html.escape(str(variant))}</p>'
        + "".join(sections)
        + "</body></html>\n"
    )


def write_page(path: Path, query: str, hits: list[Hit], variant: str, gallery: int) -> None:
    atomic_write_text(path, page(query, hits, variant, gallery))
