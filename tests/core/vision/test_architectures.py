"""Sweep every registered architecture: builds, forward shapes, CAM layer, weights init."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from core.errors import ModelError
from core.vision.architectures import (
    ARCHITECTURES,
    build_model,
    classifier_head,
    fold_batchnorm,
    get_spec,
)


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


class _WritesMarker:
    """Unpickling this creates the marker file: what a malicious weights file could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def _conversion_snippet(message: str) -> str:
    """The python code the error message tells the user to run."""
    start = message.index('python -c "') + len('python -c "')
    return message[start : message.index('"', start)]


def test_weights_whose_pickle_would_run_code_are_refused_unread(tmp_path: Path) -> None:
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_WritesMarker(proof))).close()
    assert proof.exists()  # the payload is live: unpickling it runs code
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    state = build_model("defectnet", 3, 1).state_dict()
    torch.save({"state_dict": state, "extra": _WritesMarker(marker)}, path)
    with pytest.raises(ModelError) as err:
        build_model("defectnet", 3, 1, weights_path=path)
    assert not marker.exists()
    message = str(err.value)
    assert str(path) in message and "safetensors" in message and "save_file" in message


def test_plain_state_dict_file_is_refused_with_a_conversion_that_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = build_model("defectnet", 3, 1)
    path = tmp_path / "w.pt"
    torch.save({"state_dict": src.state_dict()}, path)
    with pytest.raises(ModelError) as err:
        build_model("defectnet", 3, 1, weights_path=path)
    assert str(path) in str(err.value)
    # Run the advice as a user would on a file they trust; the result loads.
    monkeypatch.chdir(tmp_path)
    exec(_conversion_snippet(str(err.value)), {})
    model = build_model("defectnet", 3, 1, weights_path=path.with_suffix(".safetensors"))
    assert torch.equal(model.fc.weight, src.fc.weight)


def test_a_pickle_named_safetensors_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    torch.save(build_model("defectnet", 3, 1).state_dict(), path)
    with pytest.raises(ModelError, match="not a safetensors file"):
        build_model("defectnet", 3, 1, weights_path=path)


def test_init_with_nothing_matching_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"unrelated": torch.zeros(3)}, str(path))
    with pytest.raises(ModelError, match="no tensor"):
        build_model("defectnet", 3, 1, weights_path=path)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_folding_batchnorm_keeps_outputs_and_the_grad_cam_layer(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 3, 1)
    for m in model.modules():  # trained-looking statistics, not the identity defaults
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    model.eval()
    x = torch.randn(4, 1, 64, 64)
    layer = get_spec(name).cam_layer(model)
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    with torch.no_grad():
        want = model(x)
        folded = fold_batchnorm(model, keep=layer)
        got = model(x)
    handle.remove()
    bns = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert folded > 0 and bns == 1  # only the Grad-CAM layer's BatchNorm is left
    assert get_spec(name).cam_layer(model) is layer
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
    assert torch.allclose(captured[1], captured[0], atol=1e-4, rtol=1e-4)
