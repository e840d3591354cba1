"""Train ProPy for one variant; resumable; one process or one DDP process per GPU.

Resuming. Each epoch ends with ``<out>/last.pt`` (trainable weights, optimizer,
scheduler, grad scaler, RNG states, log, best SumR) and a config hash of the
params and input files that shape the run. Resuming works at epoch granularity:
an interrupted epoch is redone from its start. Without flags an existing ``last.pt`` with the same
hash is continued, because DVC re-runs an interrupted stage with the same
command; one with another hash is ignored and training starts fresh.
``--resume`` insists on continuing (an error if it cannot); ``--fresh`` always
restarts. Every random choice is a function of (seed, epoch, index), so on CPU a
resumed run ends with bit-identical weights to an uninterrupted one.

Multi-GPU (WORLD_SIZE > 1; nccl on CUDA, gloo on CPU). On CUDA with several visible GPUs (or with
``--nproc N``) the command starts its own DDP processes through torch's elastic launcher, so
``dvc repro`` uses every GPU; under ``torchrun`` (WORLD_SIZE set, e.g. several machines) it joins
the process group torchrun made instead. Each batch
of B videos is split into contiguous shares, one per rank; every rank gathers
the embeddings of the whole batch and computes the loss over all B videos and
their queries, exactly as one process would. Gradients flow through the
rank's own rows only, so the loss is multiplied by the world size before DDP
averages the gradients: the update equals the single-process one, and the
batch size, step count and schedule do not depend on the number of processes.
Only rank 0 validates and writes files.

Log (``logs/train/<dataset>/<variant>-s<seed>.json``, a JSON list rewritten atomically each epoch):
``{"epoch" (1-based), "step" (steps so far), "loss" (mean over the epoch's steps),
"lr" (of the epoch's last step), "val_R1", ..., "val_SumR", "seconds" (train + validation)}``.
``best.pt`` holds ``{"trainable", "epoch", "val_SumR"}`` of the best validation SumR.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from propy.config import (
    TRAINED_KINDS,
    Layout,
    Params,
)
from propy.data.annotations import load_annotations
from propy.data.cache import MANIFEST, FrameCache
from propy.data.datasets import cached_queries, epoch_batches, query_tokens, rival_groups
from propy.errors import ConfigError, PropyError
from propy.evaluation.encode import load_split, retrieval, video_inputs
from propy.model.backbone import load_clip
from propy.model.checkpoint import (
    file_digest,
    json_digest,
    load_resume,
    pick_device,
    save_resume,
    save_trained,
)
from propy.model.loading import load_weights
from propy.model.network import build_model
from propy.runtime.files import atomic_write_json, prepare_output, read_json
from propy.runtime.locks import exclusive
from propy.runtime.progress import progress
from propy.train.optim import make_optimizer, make_scheduler


def processes(requested: int | None, device: str | None) -> int:
    """DDP processes to start: ``requested``, else one per visible GPU when training on CUDA, else one."""
    cuda = pick_device(device).type == "cuda"
    if requested is None:
        return torch.cuda.device_count() if cuda else 1
    if requested < 1:
        raise ConfigError(f"--nproc must be at least 1, got {requested}")
    if cuda and requested > torch.cuda.device_count():
        raise ConfigError(
            f"--nproc {requested}: only {torch.cuda.device_count()} GPUs are visible (one process per "
            "GPU; CUDA_VISIBLE_DEVICES may hide some)"
        )
    return requested


def check_processes(params: Params, world: int) -> None:
    """Each process takes a contiguous share of every batch: a batch of fewer videos than processes
    cannot be split (checked before any process is launched, and again in each under torchrun)."""
    if params.train.batch_videos < world:
        raise ConfigError(
            f"train.batch_videos ({params.train.batch_videos}) must be at least the number of processes ({world}); "
            f"the value is {params.where('train.batch_videos')}"
        )


def train_job(
    params: Params,
    layout: Layout,
    seed: int,
    out: Path,
    log: Path,
    device: str | None,
    resume: str,
    init_from: str | None,
) -> None:
    """One process's training (a module-level function, so the launcher can start it in a fresh interpreter)."""
    train(params, layout, seed, out, log, device=device, resume=resume, init_from=init_from)


def launch(nproc: int, fn, *args) -> None:
    """Run ``fn(*args)`` in ``nproc`` processes on this machine with torch's elastic launcher (as
    ``torchrun --standalone --nproc_per_node nproc`` would: a local rendezvous on a free port, RANK,
    WORLD_SIZE and LOCAL_RANK set in each); a failed process stops them all and is reported."""
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"propy-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.5,
    )
    try:
        elastic_launch(config, fn)(*args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        raise PropyError(
            f"training process {rank} of {nproc} failed (exit code {failure.exitcode}); its error is printed above"
        ) from None


# --------------------------------------------------------------------------- set-up


@dataclass(frozen=True)
class Process:
    """This process's place in the run: rank, world size and device."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def _start_process(device: str | None) -> Process:
    """Join the torchrun process group when WORLD_SIZE > 1; pick the device."""
    cuda = pick_device(device).type == "cuda"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Process(0, 1, torch.device("cuda" if cuda else "cpu"))
    local = int(os.environ["LOCAL_RANK"])
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo")
    return Process(dist.get_rank(), world, torch.device(f"cuda:{local}" if cuda else "cpu"))


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def config_hash(params: Params, layout: Layout, seed: int) -> str:
    """Hash of what shapes the trained weights: the params blocks and the input files' contents.

    The files (train/val annotations and cache manifests, the CLIP checkpoint) are
    hashed too, because a re-made input keeps its path: DVC re-runs the stage,
    and resuming the old run would keep weights trained on the old inputs.
    """
    files = [layout.annotations(split) for split in ("train", "val")]
    files += [layout.cache_split(split) / MANIFEST for split in ("train", "val")]
    files += [Path(params.clip.pretrained)] if params.clip.pretrained else []
    files += [layout.rivals] if layout.rivals else []
    shaping = {
        "dataset": params.dataset,
        "data": dataclasses.asdict(params.data),
        "layout": [str(layout.data), str(layout.cache)],
        "seed": seed,
        "extract": dataclasses.asdict(params.extract),
        "clip": dataclasses.asdict(params.clip),
        "model": dataclasses.asdict(params.model),
        "train": dataclasses.asdict(params.train),
        "files": {str(path): file_digest(path) for path in files if path.is_file()},
    }
    return json_digest(shaping)


class _Encoders(nn.Module):
    """Both towers behind one ``forward``, so DistributedDataParallel sees (and syncs) the step."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode_video(frames), self.model.encode_text(tokens)


def _gather_rows(x: torch.Tensor, sizes: list[int], proc: Process) -> torch.Tensor:
    """Every rank's ``x`` (``sizes[r]`` rows on rank r) concatenated; autograd flows to own rows only."""
    if proc.world == 1:
        return x
    padded = x.new_zeros((max(sizes), *x.shape[1:]))
    padded[: len(x)] = x.detach()
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    parts = [part[:n] for part, n in zip(parts, sizes)]
    parts[proc.rank] = x
    return torch.cat(parts)


# --------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class Batch:
    """One step: this rank's videos and queries, and the shapes/labels of the whole batch."""

    videos: list[int]  # this rank's share of the batch's video indices
    queries: np.ndarray  # record indices of those videos' queries
    video_sizes: list[int]  # videos per rank
    query_sizes: list[int]  # queries per rank
    labels: torch.Tensor  # [Q] column (position in the batch) of each query's video, all ranks


def plan_batch(videos: np.ndarray, groups: list[list[int]], proc: Process) -> Batch:
    shares = np.array_split(videos, proc.world)
    share_queries = [[q for v in share for q in groups[v]] for share in shares]
    labels = [j for j, v in enumerate(videos) for _ in groups[v]]
    return Batch(
        videos=shares[proc.rank].tolist(),
        queries=np.asarray(share_queries[proc.rank], dtype=np.int64),
        video_sizes=[len(s) for s in shares],
        query_sizes=[len(q) for q in share_queries],
        labels=torch.tensor(labels, dtype=torch.long),
    )


# --------------------------------------------------------------------------- training


class Trainer:
    """State of one training run: model, data, optimiser and the per-epoch log."""

    def __init__(self, params: Params, layout: Layout, seed: int, out: Path, log_path: Path, proc: Process) -> None:
        if params.model.kind not in TRAINED_KINDS:
            raise ConfigError(
                f"variant {params.variant!r}: model.kind {params.model.kind!r} is a zero-shot baseline with "
                f"nothing to train; evaluate it directly with `python -m propy evaluate --variant {params.variant}`"
            )
        check_processes(params, proc.world)
        cfg = params.train
        self.params, self.cfg, self.seed, self.out, self.log_path, self.proc = params, cfg, seed, out, log_path, proc
        seed_everything(seed, deterministic=proc.device.type == "cpu")
        backbone = load_clip(params.clip)
        self.model = build_model(params.model, backbone.model).to(proc.device)

        path = layout.annotations("train")
        cache = FrameCache(layout.cache, "train").require_size(backbone.image_size, params.clip.model)
        queries = cached_queries(load_annotations(path), cache.names, str(path))
        cache.verify(queries.vid_names)  # here, once: DataLoader workers inherit the checked set
        self.groups = queries.groups
        self.clips = video_inputs(params, layout, cache, queries.vid_names, backbone, train=True, seed=seed)
        self.tokens = query_tokens(queries.records, backbone.tokenizer, cfg.max_words)
        self.together = None
        if cfg.rival_batches:
            if layout.rivals is None:
                raise ConfigError(
                    f"train.rival_batches: {layout.data} has no rivals.json (the synthetic benchmark's "
                    "rival probes, written by `python -m propy synth`); set train.rival_batches: false"
                )
            rivals = read_json(layout.rivals, "no such rivals file (written by `python -m propy synth`)")
            self.together = rival_groups(queries.records, queries.vid_names, rivals)
        self.steps_per_epoch = len(self.epoch_batches(0))
        self.val = load_split(params, layout, "val", backbone) if proc.main else None

        self.optimizer = make_optimizer(self.model, cfg)
        self.scheduler = make_scheduler(self.optimizer, cfg.epochs * self.steps_per_epoch, cfg.warmup)
        cuda_amp = proc.device.type == "cuda" and cfg.amp
        self.amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda_amp else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.net = _Encoders(self.model)
        if proc.world > 1:
            ids = [proc.device.index] if proc.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.net, device_ids=ids, broadcast_buffers=False)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.hash = config_hash(params, layout, seed)
        self.epoch = 0  # epochs completed
        self.step = 0
        self.best = float("-inf")
        self.log: list[dict] = []

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """The video indices of each batch of ``epoch`` (rival groups kept together with train.rival_batches)."""
        return epoch_batches(
            len(self.clips),
            self.cfg.batch_videos,
            self.seed,
            epoch,
            self.together,
            self.params.where("train.batch_videos"),
        )

    # ---------------------------------------------------------------- checkpoints

    def restore(self, mode: str) -> None:
        """Continue from ``last.pt`` per the resume ``mode`` (see the module docstring)."""
        path = self.out / "last.pt"
        state = load_resume(path, self.hash, mode, log=print if self.proc.main else lambda _: None)
        if state is None:
            return
        self.model.load_trainable_state_dict(state["trainable"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if "cuda" in state["rng"] and self.proc.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), self.proc.device)
        self.epoch, self.step, self.best, self.log = state["epoch"], state["step"], state["best"], state["log"]
        if self.proc.main:
            print(f"{path}: resuming after epoch {self.epoch} of {self.cfg.epochs}")

    def _save(self, improved: bool) -> None:
        """Log, then ``best.pt`` if improved, then ``last.pt``: a crash in between only redoes the epoch."""
        atomic_write_json(self.log_path, self.log)
        trainable = self.model.trainable_state_dict()
        if improved:
            save_trained(
                self.out / "best.pt", trainable, self.params, epoch=self.epoch, val_SumR=self.best, seed=self.seed
            )
        rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
        if self.proc.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.proc.device)
        save_resume(
            self.out / "last.pt",
            self.hash,
            {
                "epoch": self.epoch,
                "step": self.step,
                "best": self.best,
                "log": self.log,
                "trainable": trainable,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": rng,
            },
        )

    # ---------------------------------------------------------------- loop

    def fit(self) -> None:
        if self.epoch >= self.cfg.epochs and self.proc.main:
            atomic_write_json(self.log_path, self.log)
            print(f"{self.out / 'last.pt'}: already trained for {self.epoch} epochs; nothing to do")
        while self.epoch < self.cfg.epochs and not self._should_stop():
            started = time.perf_counter()
            loss, lr, steps_per_s = self._train_epoch()
            self.epoch += 1
            if self.proc.main:
                self._end_epoch(loss, lr, started, steps_per_s)
            if self.proc.world > 1:
                dist.barrier()

    def _should_stop(self) -> bool:
        """Early stopping (``train.patience``): that many epochs in a row without a better validation
        SumR. Rank 0 decides (it alone validates) and tells the others."""
        patience, stop = self.cfg.patience, False
        if patience is None:
            return False
        if self.proc.main and self.log:
            best_epoch = next(e["epoch"] for e in self.log if e["val_SumR"] == self.best)
            stop = self.epoch - best_epoch >= patience
            if stop:
                print(
                    f"early stop after epoch {self.epoch}: no better validation SumR since epoch {best_epoch} "
                    f"(train.patience {patience})"
                )
        if self.proc.world > 1:
            flag = torch.tensor([float(stop)], device=self.proc.device)
            dist.broadcast(flag, 0)
            stop = bool(flag.item())
        return stop

    def _train_epoch(self) -> tuple[float, float, float]:
        cfg, proc = self.cfg, self.proc
        batches = [plan_batch(videos, self.groups, proc) for videos in self.epoch_batches(self.epoch)]
        loader = self.loader(batches, self.epoch)
        self.model.train()
        losses, lr, started = [], 0.0, time.perf_counter()
        steps = progress(
            zip(batches, loader),
            len(batches),
            f"epoch {self.epoch + 1}/{cfg.epochs}",
            unit="step",
            enabled=proc.main,
            status=lambda: f"loss {losses[-1]:.4f}, lr {lr:.2e}",
        )
        for batch, frames in steps:  # a bar on a terminal, a line every 30 s in a log (dvc repro)
            lr = self.optimizer.param_groups[0]["lr"]
            losses.append(self.train_step(batch, frames))
        steps_per_s = len(batches) / (time.perf_counter() - started)
        return float(np.mean(losses)), lr, steps_per_s

    def loader(self, batches: list[Batch], epoch: int) -> DataLoader:
        """This rank's frames of each of ``batches`` in turn, decoded by ``train.num_workers`` workers."""
        self.clips.set_epoch(epoch)
        return DataLoader(
            self.clips,
            batch_sampler=[b.videos for b in batches],
            num_workers=self.cfg.num_workers,
            pin_memory=self.proc.device.type == "cuda",
        )

    def train_step(self, batch: Batch, frames: torch.Tensor) -> float:
        device = self.proc.device
        frames = frames.to(device, non_blocking=True)
        tokens = self.tokens[torch.from_numpy(batch.queries)].to(device)
        autocast = torch.autocast(device.type, dtype=self.amp_dtype) if self.amp_dtype else contextlib.nullcontext()
        with autocast:
            video_emb, text_emb = self.net(frames, tokens)
        videos = _gather_rows(video_emb.float(), batch.video_sizes, self.proc)
        texts = _gather_rows(text_emb.float(), batch.query_sizes, self.proc)
        loss = self.model.loss(videos, texts, batch.labels.to(device), self.epoch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss * self.proc.world).backward()
        self.scaler.unscale_(self.optimizer)
        nn.utils.clip_grad_norm_(self.trainable, self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        return loss.item()

    def _end_epoch(self, loss: float, lr: float, started: float, steps_per_s: float) -> None:
        """Validate, append the epoch to the log, save the checkpoints (rank 0 only)."""
        metrics = retrieval(self.model, self.val, self.params, self.proc.device)
        entry = {"epoch": self.epoch, "step": self.step, "loss": loss, "lr": lr}
        entry.update({f"val_{k}": v for k, v in metrics.items() if k not in ("MedR", "MeanR")})
        entry["seconds"] = time.perf_counter() - started
        self.log.append(entry)
        improved = metrics["SumR"] > self.best
        if improved:
            self.best = metrics["SumR"]
        self._save(improved)
        print(
            f"epoch {self.epoch}/{self.cfg.epochs}: loss {loss:.4f}, val SumR {metrics['SumR']:.1f}"
            f"{' (best)' if improved else ''}, {steps_per_s:.2f} steps/s, {entry['seconds']:.1f} s"
        )


def train(
    params: Params,
    layout: Layout,
    seed: int,
    out: Path,
    log_path: Path,
    device: str | None = None,
    resume: str = "auto",
    init_from: str | None = None,
) -> nn.Module:
    """Train (or continue training) ``params``' variant; returns the model with its final weights.
    ``init_from`` (a trained checkpoint) sets the starting tensors; a resumed run overrides them.
    The main process holds the lock of ``out`` throughout and checks that ``out`` and ``log_path``
    can be written before any work."""
    proc = _start_process(device)
    try:
        with exclusive(out, "train") if proc.main else contextlib.nullcontext():
            if proc.main:
                prepare_output(out, folder=True)
                prepare_output(log_path)
            trainer = Trainer(params, layout, seed, Path(out), Path(log_path), proc)
            if init_from:
                load_weights(trainer.model, params, Path(init_from))
            trainer.restore(resume)
            trainer.fit()
            return trainer.model
    finally:
        if proc.world > 1:
            dist.destroy_process_group()
