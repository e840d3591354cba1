"""open_clip loading: configs by name or JSON, local checkpoints, freezing, preprocessing, tokenizer."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import open_clip
import pytest
import torch

from propy.config import ClipConfig
from propy.errors import ConfigError
from propy.model.backbone import create_clip, load_clip, tokenize
from propy.model.configs import model_config

TINY = "configs/propy-tiny.json"
SOS, EOS = 49406, 49407


def test_model_config_reads_json_and_registry():
    with open(TINY, encoding="utf-8") as f:
        assert model_config(TINY) == json.load(f)
    assert model_config("ViT-B-32")["vision_cfg"]["width"] == 768


@pytest.mark.parametrize("name, needle", [("ViT-Q-99", "ViT-Q-99"), ("configs/nope.json", "configs/nope.json")])
def test_unknown_model_is_a_config_error_naming_it(name, needle):
    with pytest.raises(ConfigError, match=needle):
        model_config(name)
    with pytest.raises(ConfigError, match=needle):
        create_clip(name)


def test_json_without_required_keys_is_a_config_error(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"embed_dim": 8, "vision_cfg": {}}))
    with pytest.raises(ConfigError, match="text_cfg"):
        create_clip(str(path))


def test_tiny_config_builds_a_small_vit_clip():
    model = create_clip(TINY)
    assert isinstance(model, open_clip.CLIP)
    assert model.visual.grid_size == (4, 4)  # 32 px / patch 8: 16 patches + CLS
    assert model.visual.transformer.resblocks[0].attn.num_heads == 4
    assert model.positional_embedding.shape[0] == 32  # text context length


def test_missing_checkpoint_is_a_config_error_naming_the_file(tmp_path):
    missing = tmp_path / "clip.pt"
    with pytest.raises(ConfigError, match=str(missing)):
        create_clip(TINY, pretrained=str(missing))
    with pytest.raises(ConfigError, match=str(missing)):
        load_clip(ClipConfig(model=TINY, pretrained=str(missing)))


def test_local_checkpoint_round_trip(tmp_path):
    torch.manual_seed(1)
    saved = create_clip(TINY)
    path = tmp_path / "clip.pt"
    torch.save(saved.state_dict(), path)
    torch.manual_seed(2)
    loaded = create_clip(TINY, pretrained=str(path))
    for (name, a), b in zip(saved.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


def test_checkpoint_of_another_shape_is_a_config_error(tmp_path):
    cfg = model_config(TINY)
    cfg["embed_dim"] = 32
    path = tmp_path / "other.pt"
    torch.save(open_clip.CLIP(**cfg).state_dict(), path)
    with pytest.raises(ConfigError, match="cannot build"):
        create_clip(TINY, pretrained=str(path))


def test_load_clip_freezes_and_reports_preprocessing():
    backbone = load_clip(ClipConfig(model=TINY, pretrained=""))
    assert not any(p.requires_grad for p in backbone.model.parameters())
    assert not backbone.model.training
    assert backbone.mean == pytest.approx(open_clip.OPENAI_DATASET_MEAN)
    assert backbone.std == pytest.approx(open_clip.OPENAI_DATASET_STD)
    assert len(backbone.mean) == len(backbone.std) == 3
    assert backbone.image_size == 32


def test_tokenize_pads_and_truncates():
    tokenizer = load_clip(ClipConfig(model=TINY, pretrained="")).tokenizer
    with pytest.warns(
        UserWarning,
        match=r"^1 of 2 text\(s\) are longer than the text context of 6 tokens .* "
        r"cut to fit it, e\.g\. 'a a a a a a a a a a'$",
    ) as caught:
        tokens = tokenize(tokenizer, ["a", "a a a a a a a a a a"], max_words=6)
    assert len(caught) == 1  # issue 23 case 8: a cut query used to pass without notice
    assert tokens.dtype == torch.long and tokens.shape == (2, 6)
    a = 320  # BPE id of "a</w>"
    assert tokens[0].tolist() == [SOS, a, EOS, 0, 0, 0]
    assert tokens[1].tolist() == [SOS, a, a, a, a, EOS]  # max_words - 2 words kept
    with pytest.raises(ConfigError, match="max_words"):
        tokenize(tokenizer, ["a"], max_words=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tokenize(tokenizer, ["a a a a"], max_words=6)[0].tolist() == [SOS, a, a, a, a, EOS]  # fits: no word


def test_json_configs_sharing_a_stem_each_build_their_own_model(tmp_path):
    cfg = model_config(TINY)
    cfg["embed_dim"] = 32
    other = tmp_path / "propy-tiny.json"  # same stem as the repo's config, other content
    other.write_text(json.dumps(cfg))
    assert create_clip(str(other)).text_projection.shape == (64, 32)
    assert create_clip(TINY).text_projection.shape == (64, 64)
    assert create_clip(str(other)).text_projection.shape == (64, 32)


def test_library_configs_are_read_without_importing_open_clip():
    """The frame cache needs only the input size: `propy extract` reads open_clip's config files itself
    (importing open_clip costs seconds: torchvision, torch._dynamo), and reads what open_clip would."""
    from propy.model.configs import model_config as light

    library = Path(open_clip.__file__).parent / "model_configs"  # list_models() also holds configs tests registered
    names = sorted(p.stem for p in library.glob("*.json"))
    assert "ViT-B-32" in names and len(names) > 50
    for name in names:
        assert light(name) == open_clip.get_model_config(name), name
    code = (
        "import sys, propy.commands.extract, propy.model.configs as c; "
        "assert c.model_config('ViT-B-32')['vision_cfg']['image_size'] == 224; "
        "print(sorted({'torch', 'open_clip', 'torchvision'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
