"""core.training.config: the torch-free architecture list agrees with the model registry."""

from __future__ import annotations

from pathlib import Path

from core.training.config import ARCHITECTURE_NAMES, DEFAULT_IMG_SIZES, TrainConfig
from core.vision.architectures import ARCHITECTURES


def test_architecture_names_and_sizes_match_the_registry() -> None:
    assert tuple(ARCHITECTURES) == ARCHITECTURE_NAMES
    assert dict(DEFAULT_IMG_SIZES) == {n: s.default_img_size for n, s in ARCHITECTURES.items()}


def test_resolved_img_size_defaults_to_the_architectures() -> None:
    for name in ARCHITECTURE_NAMES:
        assert TrainConfig(arch=name).resolved_img_size() == DEFAULT_IMG_SIZES[name]
    assert TrainConfig(arch="resnet18", img_size=40).resolved_img_size() == 40


def test_to_dict_is_json_safe() -> None:
    d = TrainConfig(weights_path=Path("/w.safetensors")).to_dict()
    assert d["weights_path"] == "/w.safetensors" and d["arch"] == "defectnet"
    assert TrainConfig().to_dict()["weights_path"] is None
