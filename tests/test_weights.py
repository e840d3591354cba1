"""CLIP weight files: OpenAI's TorchScript archive loads (directly or converted) and a QuickGELU/GELU
mismatch between weights and model config is refused."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch
from conftest import REPO, write_openai_archive

from propy.cli import main
from propy.errors import ConfigError
from propy.model.backbone import create_clip
from propy.model.configs import model_config
from propy.model.weights import (
    GELU,
    QUICK_GELU,
    check_activation,
    is_torchscript,
    read_weights,
)

TINY = str(REPO / "configs" / "propy-tiny.json")  # GELU
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.script/save, writing test archives


@pytest.fixture(scope="module")
def quick_config(tmp_path_factory):
    """The tiny config with QuickGELU, as ViT-B-32-quickgelu is to ViT-B-32."""
    path = tmp_path_factory.mktemp("cfg") / "propy-tiny-quickgelu.json"
    path.write_text(json.dumps({**json.loads(open(TINY).read()), "quick_gelu": True}))
    return str(path)


@pytest.fixture(scope="module")
def source():
    torch.manual_seed(5)
    return create_clip(TINY).state_dict()


def _same_weights(model, state_dict, half=True):
    """The model holds ``state_dict`` (rounded to float16 as in OpenAI's archives when ``half``)."""
    loaded = model.state_dict()
    return all(torch.equal(loaded[k], v.half().float() if half else v) for k, v in state_dict.items())


def test_the_openai_archive_loads_as_published(tmp_path, source, quick_config):
    archive = write_openai_archive(source, tmp_path / "ViT-B-32.pt")
    assert is_torchscript(archive)
    with pytest.raises(Exception):  # noqa: B017 (open_clip's own error, whichever it is: the defect this module fixes)
        open_clip.load_checkpoint(open_clip.create_model("propy-tiny-quickgelu"), str(archive))
    model = create_clip(quick_config, str(archive))
    assert _same_weights(model, source)  # float16 in the archive, float32 in the model
    assert model.visual.transformer.resblocks[0].mlp.gelu.__class__.__name__ == "QuickGELU"


def test_an_activation_mismatch_is_refused(tmp_path, source):
    archive = write_openai_archive(source, tmp_path / "ViT-B-32.pt")
    with pytest.raises(ConfigError, match=r"builds GELU but the weights .* were trained with QUICK_GELU; .*-quickgelu"):
        create_clip(TINY, str(archive))
    gelu = write_openai_archive(source, tmp_path / "gelu.pt", quick_gelu=False)
    assert read_weights(gelu)[1] == GELU
    assert _same_weights(create_clip(TINY, str(gelu)), source)
    # the names users write: ViT-B-32 is GELU, ViT-B-32-quickgelu matches OpenAI's weights
    with pytest.raises(ConfigError, match="clip.model: ViT-B-32 builds GELU"):
        check_activation(QUICK_GELU, model_config("ViT-B-32"), "ViT-B-32", archive)
    check_activation(QUICK_GELU, model_config("ViT-B-32-quickgelu"), "ViT-B-32-quickgelu", archive)


def test_convert_weights_writes_an_open_clip_state_dict_that_keeps_the_activation(
    tmp_path, source, quick_config, capsys
):
    archive = write_openai_archive(source, tmp_path / "ViT-B-32.pt")
    out = tmp_path / "weights" / "converted.pt"
    assert main(["convert-weights", str(archive), str(out)]) == 0
    assert "activation quick_gelu" in capsys.readouterr().out
    assert not is_torchscript(out) and read_weights(out) == (None, QUICK_GELU)
    assert _same_weights(create_clip(quick_config, str(out)), source)
    assert _same_weights(open_clip.create_model("propy-tiny-quickgelu", pretrained=str(out)), source)  # plain open_clip
    with pytest.raises(ConfigError, match="were trained with QUICK_GELU"):
        create_clip(TINY, str(out))
    assert main(["convert-weights", str(out), str(tmp_path / "again.pt")]) == 2
    assert "not a TorchScript archive" in capsys.readouterr().err


def test_a_plain_state_dict_is_not_checked(tmp_path, source, quick_config):
    path = tmp_path / "plain.pt"
    torch.save(source, path)
    assert read_weights(path) == (None, None)
    assert _same_weights(create_clip(quick_config, str(path)), source, half=False)
