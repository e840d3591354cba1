import json
import math
import os
import re
import shutil

import numpy as np
import pytest
import torch
from conftest import REPO, layout_args, run_evaluate, run_train, tiny_layout, write_tiny_params

from propy.config import Layout, load_params
from propy.data.annotations import load_annotations
from propy.errors import ConfigError, PropyError
from propy.model.backbone import create_clip
from propy.runtime.files import atomic_torch_save
from propy.train.trainer import Process, Trainer, config_hash, plan_batch

LOG_KEYS = ["epoch", "step", "loss", "lr", "val_R1", "val_R2", "val_R3", "val_R4", "val_SumR", "seconds"]


def train_cli(bench, params, out, *flags):
    return run_train(params, layout_args(bench), out / "models", out / "log.json", "--device", "cpu", *flags)


def load(path):
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.fixture(scope="module")
def straight(tiny_bench, tmp_path_factory):
    """An uninterrupted 2-epoch run (8 training videos, 4 per batch: 2 steps per epoch)."""
    out = tmp_path_factory.mktemp("straight")
    params = write_tiny_params(out / "params.yaml")
    assert train_cli(tiny_bench, params, out) == 0
    return params, out


def test_log_and_checkpoints(straight):
    _, out = straight
    log = json.loads((out / "log.json").read_text())
    assert [list(entry) for entry in log] == [LOG_KEYS, LOG_KEYS]
    assert [(e["epoch"], e["step"]) for e in log] == [(1, 2), (2, 4)]
    # 4 steps, no warm-up step (round(0.1 * 4) = 0): the lr of the last step of each epoch.
    assert log[0]["lr"] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert log[1]["lr"] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(3 * math.pi / 4)))
    assert all(math.isfinite(e["loss"]) and e["loss"] > 0 for e in log)
    last, best = load(out / "models" / "last.pt"), load(out / "models" / "best.pt")
    assert last["epoch"] == 2 and last["step"] == 4 and last["log"] == log
    sums = [e["val_SumR"] for e in log]
    assert best["epoch"] == 1 + int(np.argmax(sums)) and best["val_SumR"] == max(sums)
    assert set(best) == {"format", "trainable", "fingerprint", "code_version", "epoch", "val_SumR", "seed"}
    assert best["seed"] == 3
    assert best["fingerprint"]["model"]["num_frames"] == 4 and best["fingerprint"]["clip"]["weights"] == ""
    assert best["trainable"].keys() == last["trainable"].keys()
    same = all(torch.equal(last["trainable"][k], v) for k, v in best["trainable"].items())
    assert same == (best["epoch"] == 2)  # best.pt holds the weights of its own epoch


def test_train_then_evaluate_in_one_process_equals_a_separate_evaluate(tiny_bench, tmp_path, capsys):
    """The pipeline's training stage evaluates best.pt on the test split itself (one start-up, not two):
    the same files as `propy evaluate --checkpoint best.pt`; a finished run only re-evaluates."""
    torch.manual_seed(0)  # a random CLIP saved to a file: training and both evaluations load the same weights
    atomic_torch_save(tmp_path / "clip.pt", create_clip(str(REPO / "configs" / "propy-tiny.json")).state_dict())
    params = write_tiny_params(tmp_path / "params.yaml", {"clip": {"pretrained": str(tmp_path / "clip.pt")}})
    metrics, results = tmp_path / "in_train.json", tmp_path / "in_train"
    flags = ["--metrics", str(metrics), "--results", str(results)]
    assert train_cli(tiny_bench, params, tmp_path, *flags) == 0
    assert "tiny (seed 3) on test: R1 " in capsys.readouterr().out
    alone_metrics, alone_results = tmp_path / "alone.json", tmp_path / "alone"
    weights = ["--checkpoint", str(tmp_path / "models" / "best.pt")]
    assert run_evaluate(params, layout_args(tiny_bench), "tiny", alone_metrics, alone_results, *weights) == 0
    assert json.loads(metrics.read_text()) == json.loads(alone_metrics.read_text())
    assert sorted(p.name for p in results.iterdir()) == sorted(p.name for p in alone_results.iterdir())
    for path in results.iterdir():
        assert path.read_bytes() == (alone_results / path.name).read_bytes(), path.name

    before, metrics_bytes = (tmp_path / "models" / "last.pt").stat().st_mtime_ns, metrics.read_bytes()
    metrics.unlink()
    assert train_cli(tiny_bench, params, tmp_path, *flags) == 0  # finished: evaluates again, trains nothing
    assert "nothing to do" in capsys.readouterr().out and metrics.read_bytes() == metrics_bytes
    assert (tmp_path / "models" / "last.pt").stat().st_mtime_ns == before
    assert train_cli(tiny_bench, params, tmp_path, "--metrics", str(metrics)) == 2
    assert "--metrics and --results go together" in capsys.readouterr().err


def test_resume_after_interruption_is_bit_identical(straight, tiny_bench, tmp_path, monkeypatch):
    params, straight_out = straight
    original = Trainer._train_epoch

    def interrupted_after_one_epoch(self):
        if self.epoch == 1:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "_train_epoch", interrupted_after_one_epoch)
    assert train_cli(tiny_bench, params, tmp_path) == 130
    assert load(tmp_path / "models" / "last.pt")["epoch"] == 1
    monkeypatch.setattr(Trainer, "_train_epoch", original)
    assert train_cli(tiny_bench, params, tmp_path, "--resume") == 0

    resumed, uninterrupted = load(tmp_path / "models" / "last.pt"), load(straight_out / "models" / "last.pt")
    for name, tensor in uninterrupted["trainable"].items():
        assert torch.equal(resumed["trainable"][name], tensor), name
    drop_time = lambda log: [{k: v for k, v in e.items() if k != "seconds"} for e in log]  # noqa: E731
    assert drop_time(json.loads((tmp_path / "log.json").read_text())) == drop_time(uninterrupted["log"])


def test_default_resume_follows_the_config_hash(straight, tiny_bench, tmp_path, capsys):
    params, out = straight
    before = (out / "models" / "last.pt").stat().st_mtime_ns
    assert train_cli(tiny_bench, params, out) == 0  # finished run, same params: nothing to redo
    assert "nothing to do" in capsys.readouterr().out
    assert (out / "models" / "last.pt").stat().st_mtime_ns == before

    changed = write_tiny_params(tmp_path / "params.yaml", {"train": {"lr": 5e-4}})
    copy = tmp_path / "run"
    (copy / "models").mkdir(parents=True)
    (copy / "models" / "last.pt").write_bytes((out / "models" / "last.pt").read_bytes())
    assert train_cli(tiny_bench, changed, copy, "--resume") == 2
    assert "was written for other params or input files" in capsys.readouterr().err
    assert train_cli(tiny_bench, changed, copy) == 0  # default: the stale checkpoint is ignored
    assert "starting fresh" in capsys.readouterr().out
    assert load(copy / "models" / "last.pt")["log"][0]["lr"] == pytest.approx(5e-4 * 0.5 * (1 + math.cos(math.pi / 4)))

    assert train_cli(tiny_bench, changed, tmp_path / "empty", "--resume") == 2
    assert "no checkpoint to resume from" in capsys.readouterr().err


def test_config_hash_follows_params_and_input_file_contents(tiny_bench, tmp_path):
    checkpoint = tmp_path / "clip.pt"
    checkpoint.write_bytes(b"one")
    params_path = write_tiny_params(tmp_path / "params.yaml", {"clip": {"pretrained": str(checkpoint)}})
    params, layout = load_params(params_path, "tiny"), tiny_layout(tiny_bench)
    first = config_hash(params, layout, 3)
    checkpoint.write_bytes(b"two")  # a re-made CLIP at the same path
    assert config_hash(params, layout, 3) != first
    checkpoint.write_bytes(b"one")
    assert config_hash(params, layout, 3) == first
    assert config_hash(params, layout, 4) != first  # another seed is another run
    params.train.lr *= 2
    assert config_hash(params, layout, 3) != first


def test_zero_shot_variants_are_refused(straight, tiny_bench, tmp_path, capsys):
    params, _ = straight
    code = run_train(params, layout_args(tiny_bench), tmp_path, tmp_path / "log.json", variant="zs_meanpool")
    assert code == 2
    err = capsys.readouterr().err
    assert "zero-shot baseline with nothing to train" in err and "evaluate --variant zs_meanpool" in err
    assert not any(tmp_path.iterdir())


def test_rival_batches_keep_each_pair_in_one_batch(tiny_bench, tmp_path):
    path = write_tiny_params(tmp_path / "params.yaml", {"train": {"rival_batches": True}})
    cpu = Process(0, 1, torch.device("cpu"))
    layout = tiny_layout(tiny_bench)
    trainer = Trainer(load_params(path, "tiny"), layout, 3, tmp_path / "out", tmp_path / "log.json", cpu)
    rivals = json.loads(layout.rivals.read_text())
    pairs = {frozenset((r.vid_name, rivals[r.desc_id][0])) for r in load_annotations(layout.annotations("train"))}
    names = trainer.clips.vid_names
    assert {frozenset(names[i] for i in g) for g in trainer.together} == pairs  # the (base, twin) pairs
    for epoch in range(3):
        for batch in trainer.epoch_batches(epoch):
            held = set(batch.tolist())
            assert all(set(g) <= held for g in trainer.together if set(g) & held)
    no_rivals = tmp_path / "data"  # the bench without its rivals file
    shutil.copytree(layout.data, no_rivals)
    (no_rivals / "rivals.json").unlink()
    with pytest.raises(ConfigError, match="train.rival_batches: .*data has no rivals.json"):
        Trainer(
            load_params(path, "tiny"), Layout(no_rivals, layout.cache), 3, tmp_path / "o2", tmp_path / "l2.json", cpu
        )


def test_batches_split_into_contiguous_rank_shares_with_whole_batch_labels():
    groups = [[0, 1], [2], [3, 4, 5], [6], [7, 8]]
    videos = np.array([4, 0, 2, 1, 3])
    ranks = [plan_batch(videos, groups, Process(r, 2, torch.device("cpu"))) for r in range(2)]
    assert [b.videos for b in ranks] == [[4, 0, 2], [1, 3]]
    assert ranks[0].queries.tolist() == [7, 8, 0, 1, 3, 4, 5] and ranks[1].queries.tolist() == [2, 6]
    for b in ranks:
        assert b.video_sizes == [3, 2] and b.query_sizes == [7, 2]
        assert b.labels.tolist() == [0, 0, 1, 1, 2, 2, 2, 3, 4]  # batch position of each query's video
    single = plan_batch(videos, groups, Process(0, 1, torch.device("cpu")))
    assert single.queries.tolist() == ranks[0].queries.tolist() + ranks[1].queries.tolist()
    assert torch.equal(single.labels, ranks[0].labels)


def test_a_corrupt_last_pt_is_named_and_a_fresh_start_goes_ahead(straight, tiny_bench, tmp_path, capsys):
    params, _ = straight
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "last.pt").write_bytes(b"PK\x03\x04 torn by a crash")
    assert train_cli(tiny_bench, params, tmp_path, "--resume") == 2
    err = capsys.readouterr().err
    assert "last.pt: not a readable checkpoint" in err and "--fresh" in err
    assert train_cli(tiny_bench, params, tmp_path) == 0  # default (DVC's command): named, set aside, fresh
    assert "last.pt: unreadable" in capsys.readouterr().out
    assert load(tmp_path / "models" / "last.pt")["epoch"] == 2


def test_leftover_temp_files_are_removed_at_the_next_start(straight, tiny_bench, tmp_path):
    params, out = straight
    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    for name in ("last.pt", "best.pt"):
        (run / "models" / name).write_bytes((out / "models" / name).read_bytes())
    killed = [run / "models" / ".last.pt.k1ll3d_x.tmp", run / ".log.json.k1ll3d_x.tmp"]
    for path in killed:
        path.write_bytes(b"half")
    assert train_cli(tiny_bench, params, run) == 0  # already trained: nothing to do but the clean-up
    assert not any(path.exists() for path in killed)
    assert sorted(p.name for p in (run / "models").iterdir()) == ["best.pt", "last.pt"]


def test_an_unwritable_output_fails_before_the_first_epoch(straight, tiny_bench, tmp_path, monkeypatch, capsys):
    import errno

    import propy.runtime.files

    params, _ = straight

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(propy.runtime.files, "_fsync", read_only)
    monkeypatch.setattr(Trainer, "_train_epoch", lambda self: pytest.fail("an epoch ran before the write check"))
    assert train_cli(tiny_bench, params, tmp_path) == 2
    assert f"{tmp_path}: cannot write: read-only file system" in capsys.readouterr().err


def test_training_progress_reaches_a_log_off_a_terminal(tiny_bench, tmp_path, capsys):
    """Under `dvc repro` stderr is a pipe, not a terminal: each epoch still ends with a progress line."""
    params = write_tiny_params(tmp_path / "params.yaml", {"train": {"epochs": 1}})
    assert train_cli(tiny_bench, params, tmp_path) == 0
    err = capsys.readouterr().err
    assert re.search(r"epoch 1/1: 2/2 steps \(100%\), [\d.]+ steps/s, ~0 s left, loss \d+\.\d{4}, lr ", err), err


def test_nproc_2_launches_two_gloo_processes_with_the_single_process_loss_curve(straight, tiny_bench, tmp_path):
    """`propy train --nproc 2` starts its own DDP processes (torch's elastic launcher, as `dvc repro` does
    on a machine with several GPUs; each joins the group as under `torchrun`): the same per-epoch losses,
    steps and weights as one process, up to the order of float reductions."""
    params, straight_out = straight
    assert train_cli(tiny_bench, params, tmp_path, "--nproc", "2") == 0
    log, single_log = (json.loads((out / "log.json").read_text()) for out in (tmp_path, straight_out))
    assert [e["step"] for e in log] == [2, 4]
    np.testing.assert_allclose([e["loss"] for e in log], [e["loss"] for e in single_log], rtol=1e-5)
    weights = load(tmp_path / "models" / "last.pt")["trainable"]
    for name, tensor in load(straight_out / "models" / "last.pt")["trainable"].items():
        torch.testing.assert_close(weights[name], tensor, rtol=1e-4, atol=1e-5)


def test_nproc_defaults_to_one_process_per_visible_gpu(monkeypatch, capsys):
    from propy.train.trainer import processes

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert processes(None, "cpu") == 1
    assert processes(3, "cpu") == 3
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert processes(None, "cuda") == 4
    assert processes(2, "cuda") == 2
    with pytest.raises(ConfigError, match="--nproc must be at least 1"):
        processes(0, None)
    with pytest.raises(ConfigError, match="--nproc 5: only 4 GPUs are visible"):
        processes(5, "cuda")


def test_a_batch_smaller_than_the_processes_is_refused_before_any_is_launched(
    straight, tiny_bench, tmp_path, capsys, monkeypatch
):
    import propy.commands.train

    params, _ = straight
    (tmp_path / "params.yaml").write_text(params.read_text().replace("batch_videos: 4", "batch_videos: 1", 1))
    monkeypatch.setattr(propy.commands.train, "launch", lambda *a: pytest.fail("processes were launched"))
    assert train_cli(tiny_bench, tmp_path / "params.yaml", tmp_path, "--nproc", "2") == 2
    err = capsys.readouterr().err
    assert "train.batch_videos (1) must be at least the number of processes (2); the value is" in err
    assert "params.yaml" in err and not (tmp_path / "models").exists()


def test_a_failing_launched_process_is_reported():
    """A launched process that dies (here at once, exit code 3) stops the launch with one line naming it
    (a training process's own error reaches stderr above it, as any child's stderr does)."""
    from propy.train.trainer import launch

    with pytest.raises(PropyError, match=r"training process [01] of 2 failed \(exit code 3\)"):
        launch(2, os._exit, 3)
