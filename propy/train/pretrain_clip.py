"""Train the small CLIP that the default study then freezes.

No CLIP weights can be downloaded here, so the study trains its own small
open_clip CLIP contrastively on single frames of the synthetic training videos,
each paired with the caption of the state it shows ("a red circle is on the left", reworded further
from the queries' words by ``pretrain_clip.caption_gap``, see ``propy.data.wording``). The output is a
plain open_clip state dict, so the ProPy stages load it exactly like released
weights (``create_model(config, pretrained=path)``).

The loss is CLIP's symmetric InfoNCE with open_clip's learnable logit scale
(clamped at 100). Frames of one event, and events with the same caption, share
a text, so a batch's texts are its *distinct* captions: a frame's positive is
its caption and a caption's positives are all its frames (a logsumexp), which
is ``propy.train.losses.symmetric_infonce`` and reduces to CLIP's loss when captions
are distinct; duplicated captions would otherwise be each other's negatives.

Every random choice (init, frame jitter, batch order) is a function of
(seed, epoch), and a resume state is saved after each epoch, so an interrupted
run continues where it stopped and ends with the same weights.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from propy import __version__
from propy.config import (
    Layout,
    Params,
    PretrainClipConfig,
)
from propy.data.annotations import load_annotations
from propy.data.cache import FrameCache
from propy.data.video import normalize, sample_indices
from propy.data.wording import reword
from propy.errors import ConfigError, DataError
from propy.evaluation.probes import load_rivals, query_kinds, separability, text_pairs
from propy.model.backbone import Backbone, load_clip, tokenize
from propy.model.checkpoint import (
    file_digest,
    json_digest,
    load_resume,
    save_resume,
)
from propy.model.configs import model_config
from propy.runtime.files import (
    atomic_torch_save,
    atomic_write_json,
    iter_jsonl,
)
from propy.train.losses import symmetric_infonce
from propy.train.optim import make_scheduler, param_groups

MAX_LOGIT_SCALE = math.log(100.0)
EVAL_BATCH = 1024


@dataclass
class Events:
    """Captioned events of one split: cached frame span, video and caption class of each."""

    vid_names: list[str]  # [E] the video of each event
    spans: np.ndarray  # [E, 2] int64 cached-frame [start, stop)
    labels: np.ndarray  # [E] int64 index into ``classes``
    classes: list[str]  # distinct captions, sorted


def load_captions(path: Path, gap: int = 0) -> list[dict]:
    """Records ``{vid_name, start, end, caption}`` of ``captions.jsonl``, validated line by line, each
    caption reworded at caption gap ``gap`` (``propy.data.wording``)."""
    records = []
    for where, rec in iter_jsonl(path, "no such captions file (written by `python -m propy synth`)"):
        if not isinstance(rec, dict) or not {"vid_name", "start", "end", "caption"} <= set(rec):
            raise DataError(f"{where}: expected an object with vid_name, start, end and caption")
        if not isinstance(rec["caption"], str) or not rec["caption"].strip():
            raise DataError(f"{where}: caption must be a non-empty string")
        try:
            start, end = float(rec["start"]), float(rec["end"])
        except (TypeError, ValueError):
            raise DataError(f"{where}: start and end must be numbers (seconds)") from None
        if not 0.0 <= start < end:
            raise DataError(f"{where}: expected 0 <= start < end, got start={start} end={end}")
        caption = reword(rec["caption"], gap, where)
        records.append({"vid_name": str(rec["vid_name"]), "start": start, "end": end, "caption": caption})
    return records


def split_events(captions: list[dict], cache: FrameCache, split: str) -> Events:
    """The captioned events of the videos in ``cache``, their spans mapped to cached frame indices."""
    names = set(cache.names)
    vids, spans, texts = [], [], []
    for rec in captions:
        if rec["vid_name"] not in names:
            continue
        count, duration = cache.num_frames(rec["vid_name"]), cache.duration(rec["vid_name"])
        # Cached frames cover the video uniformly (fps may be lowered by the frame cap).
        start = min(int(rec["start"] / duration * count), count - 1)
        stop = max(start + 1, min(int(math.ceil(rec["end"] / duration * count)), count))
        vids.append(rec["vid_name"])
        spans.append((start, stop))
        texts.append(rec["caption"])
    if not vids:
        raise DataError(f"captions.jsonl: no captioned event belongs to a video of the {split} frame cache")
    classes = sorted(set(texts))
    index = {c: i for i, c in enumerate(classes)}
    return Events(vids, np.array(spans, dtype=np.int64), np.array([index[t] for t in texts]), classes)


def event_frames(
    events: Events, cache: FrameCache, per_event: int, train: bool, seed: int, epoch: int
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 frames [E * per_event, S, S, 3] and their caption labels.

    Each event's span is cut into ``per_event`` segments (``sample_indices``): a
    random frame of each at training (seeded by seed, epoch, event), the centre at evaluation.
    """
    frames, labels = [], []
    for e, (vid, (start, stop)) in enumerate(zip(events.vid_names, events.spans)):
        rng = np.random.default_rng([seed, epoch, e]) if train else None
        index = start + sample_indices(int(stop - start), per_event, train, rng)
        frames.append(cache.frames_at(vid, np.asarray(index)))
        labels.append(np.full(per_event, events.labels[e]))
    return np.concatenate(frames), np.concatenate(labels)


def batch_loss(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, class_tokens: torch.Tensor
) -> torch.Tensor:
    """InfoNCE of a batch of frames [B, 3, S, S] against the batch's distinct captions."""
    present, columns = torch.unique(labels, return_inverse=True)
    image_emb = model.encode_image(images, normalize=True)
    text_emb = model.encode_text(class_tokens[present], normalize=True)
    logits = model.logit_scale.exp() * image_emb @ text_emb.T
    return symmetric_infonce(logits, columns)


def train_step(model: nn.Module, optimizer, scheduler, images, labels, class_tokens) -> float:
    """One AdamW update on one batch; returns its loss."""
    loss = batch_loss(model, images, labels, class_tokens)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    with torch.no_grad():  # as open_clip: the temperature never goes below 1/100
        model.logit_scale.clamp_(0.0, MAX_LOGIT_SCALE)
    return loss.item()


def zero_shot_accuracy(
    model: nn.Module, images: torch.Tensor, labels: np.ndarray, class_tokens: torch.Tensor, device: torch.device
) -> float:
    """Percent of frames whose most similar caption, among all ``class_tokens``, is their own."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        text_emb = model.encode_text(class_tokens.to(device), normalize=True)
        predicted = torch.cat(
            [
                (model.encode_image(chunk.to(device), normalize=True) @ text_emb.T).argmax(dim=1).cpu()
                for chunk in images.split(EVAL_BATCH)
            ]
        )
    model.train(was_training)
    return float(100.0 * np.mean(predicted.numpy() == labels))


def text_separability(model: nn.Module, backbone: Backbone, layout: Layout, device: torch.device) -> dict:
    """``propy.evaluation.probes.separability`` of the validation queries under the trained text tower: can it
    tell a query from its rival's (e.g. "ends on the left" / "on the right") before ProPy trains?"""
    records = load_annotations(layout.annotations("val"))
    vid_names = list(dict.fromkeys(r.vid_name for r in records))
    positives = np.array([vid_names.index(r.vid_name) for r in records])
    kinds = query_kinds(layout.query_kinds, records) or ["query"] * len(records)
    rivals = load_rivals(layout.rivals, records, vid_names)
    tokens = tokenize(backbone.tokenizer, [r.desc for r in records], model.context_length).to(device)
    model.eval()
    with torch.no_grad():
        embeddings = model.encode_text(tokens).float().cpu().numpy()
    return separability(embeddings, text_pairs(records, kinds, rivals, positives))


def clip_optimizer(model: nn.Module, cfg: PretrainClipConfig) -> torch.optim.AdamW:
    """AdamW as open_clip trains CLIP: no weight decay on tensors of rank < 2 (gains, biases, logit scale)."""
    groups = param_groups(model, cfg.weight_decay, exempt=lambda name, param: param.ndim < 2)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


def _resume_path(out: Path) -> Path:
    return out.with_name(out.stem + ".resume.pt")


def _config_hash(params: Params, captions: Path, cache: FrameCache) -> str:
    """What a resume state must match: the config, the model and the training data."""
    return json_digest(
        {
            "pretrain_clip": dataclasses.asdict(params.pretrain_clip),
            "clip_model": model_config(params.clip.model),
            "data": [file_digest(captions), file_digest(cache.manifest_path)],
        }
    )


def pretrain(params: Params, layout: Layout, out: Path, metrics_path: Path, device: torch.device) -> dict:
    """Train, save the state dict to ``out`` and the metrics to ``metrics_path``; return the metrics."""
    cfg = params.pretrain_clip
    started = time.perf_counter()
    captions_path = layout.captions
    captions = load_captions(captions_path, cfg.caption_gap)
    train_cache = FrameCache(layout.cache, "train")
    train_events = split_events(captions, train_cache, "train")
    val_cache = FrameCache(layout.cache, "val")
    val_events = split_events(captions, val_cache, "val")

    torch.manual_seed(cfg.seed)
    backbone: Backbone = load_clip(dataclasses.replace(params.clip, pretrained=""))
    train_cache.require_size(backbone.image_size, params.clip.model)
    model = backbone.model.requires_grad_(True).train().to(device)
    class_tokens = tokenize(backbone.tokenizer, train_events.classes, model.context_length).to(device)

    num_frames = len(train_events.labels) * cfg.frames_per_event
    steps_per_epoch = num_frames // cfg.batch_size
    if steps_per_epoch < 1:
        raise ConfigError(
            f"pretrain_clip.batch_size is {cfg.batch_size} but the training split has only {num_frames} frames"
        )
    optimizer = clip_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg.epochs * steps_per_epoch, cfg.warmup)

    resume_path = _resume_path(out)
    config_hash = _config_hash(params, captions_path, train_cache)
    state = load_resume(resume_path, config_hash, "auto")
    start_epoch, losses, elapsed = 0, [], 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, losses, elapsed = state["epoch"], state["losses"], state["seconds"]
        print(f"resuming {resume_path} after epoch {start_epoch}")

    bar = tqdm(
        total=cfg.epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch, desc="pretrain-clip", disable=None
    )
    for epoch in range(start_epoch, cfg.epochs):
        frames, labels = event_frames(train_events, train_cache, cfg.frames_per_event, True, cfg.seed, epoch)
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(labels))
        total = 0.0
        for step in range(steps_per_epoch):
            rows = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            images = normalize(frames[rows], backbone.mean, backbone.std).to(device)
            batch_labels = torch.from_numpy(labels[rows]).to(device)
            loss = train_step(model, optimizer, scheduler, images, batch_labels, class_tokens)
            total += loss
            bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.3f}")
        losses.append(total / steps_per_epoch)
        save_resume(
            resume_path,
            config_hash,
            {
                "epoch": epoch + 1,
                "losses": losses,
                "seconds": elapsed + time.perf_counter() - started,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
            },
        )
    bar.close()

    val_frames, val_labels = event_frames(val_events, val_cache, cfg.frames_per_event, False, cfg.seed, 0)
    accuracy = zero_shot_accuracy(
        model,
        normalize(val_frames, backbone.mean, backbone.std),
        val_labels,
        tokenize(backbone.tokenizer, val_events.classes, model.context_length),
        device,
    )
    atomic_torch_save(out, {k: v.detach().cpu() for k, v in model.state_dict().items()})
    metrics = {
        "zero_shot_accuracy": accuracy,
        **({"text_separability": text_separability(model, backbone, layout, device)} if layout.rivals else {}),
        "num_classes": len(val_events.classes),
        "num_frames": int(len(val_labels)),
        "epochs": cfg.epochs,
        "final_loss": float(losses[-1]),
        "seconds": round(elapsed + time.perf_counter() - started, 2),
        "propy_version": __version__,
    }
    atomic_write_json(metrics_path, metrics)
    resume_path.unlink()
    return metrics
