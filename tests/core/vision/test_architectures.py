"""Sweep every registered architecture: builds, forward shapes, CAM layer, weights init."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from core.errors import ModelError
from core.vision.architectures import ARCHITECTURES, build_model, classifier_head, get_spec


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
@pytest.mark.parametrize("in_channels", [1, 3])
def test_every_architecture_builds_and_runs(name: str, in_channels: int) -> None:
    spec = ARCHITECTURES[name]
    model = build_model(name, 4, in_channels).eval()
    size = min(spec.default_img_size, 64)
    with torch.no_grad():
        out = model(torch.rand(2, in_channels, size, size))
    assert out.shape == (2, 4)
    assert isinstance(spec.cam_layer(model), nn.Conv2d)
    assert classifier_head(model)[1].out_features == 4
    assert spec.description and spec.default_img_size >= 32


def test_unknown_name_lists_known() -> None:
    with pytest.raises(ValueError, match="defectnet"):
        get_spec("nope")
    with pytest.raises(ValueError, match="resnet18"):
        build_model("nope", 2, 1)


def test_bad_class_or_channel_count() -> None:
    with pytest.raises(ValueError):
        build_model("defectnet", 1, 1)
    with pytest.raises(ValueError):
        build_model("defectnet", 3, 2)


def test_init_from_safetensors_copies_matching_and_skips_head(tmp_path: Path) -> None:
    src = build_model("resnet18", 10, 3)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    model = build_model("resnet18", 2, 3, weights_path=path)
    assert torch.equal(model.layer1[0].conv1.weight, src.layer1[0].conv1.weight)
    assert model.fc.out_features == 2  # head shape differs: kept fresh
    # RGB weights into a grayscale model: the first conv is summed over colour channels.
    gray = build_model("resnet18", 2, 1, weights_path=path)
    assert torch.allclose(gray.conv1.weight, src.conv1.weight.sum(1, keepdim=True))


def test_init_from_plain_state_dict_uses_weights_only(tmp_path: Path) -> None:
    src = build_model("defectnet", 3, 1)
    path = tmp_path / "w.pt"
    torch.save(src.state_dict(), path)
    model = build_model("defectnet", 3, 1, weights_path=path)
    assert torch.equal(model.fc.weight, src.fc.weight)


def test_init_refuses_pickled_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "obj": Path("/")}, path)  # not a plain tensor
    with pytest.raises(ModelError):
        build_model("defectnet", 3, 1, weights_path=path)


def test_init_with_nothing_matching_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"unrelated": torch.zeros(3)}, str(path))
    with pytest.raises(ModelError, match="no tensor"):
        build_model("defectnet", 3, 1, weights_path=path)
