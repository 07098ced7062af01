"""core.training.config: the torch-free architecture list agrees with the model registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.training.config import (
    ARCHITECTURE_NAMES,
    DEFAULT_IMG_SIZES,
    IMG_SIZE_BOUNDS,
    SizeChoice,
    TrainConfig,
    choose_img_size,
    resolve_img_size,
)
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


def test_a_square_dataset_keeps_the_architectures_benchmarked_size() -> None:
    neu = [(200, 200)] * 1800  # NEU: the 96 px recipe is the benchmarked one, unchanged
    assert choose_img_size(neu, 96).img_size == 96
    assert choose_img_size(neu, 128).img_size == 128  # resnet18's default
    assert choose_img_size([(300, 300)] * 10, 96, "cuda").img_size == 96  # casting, GPU too
    assert "aspect ratio 1.00:1" in choose_img_size(neu, 96).reason


def test_non_square_images_get_a_larger_side_within_the_device_bounds() -> None:
    # 3:1 strips: 96 x sqrt(3) = 166 -> 160, so the strip itself keeps ~96x96 px after padding.
    strips = [(600, 200)] * 5
    choice = choose_img_size(strips, 96)
    assert choice.img_size == 160
    assert "aspect ratio 3.00:1" in choice.reason and "sqrt(aspect)" in choice.reason
    # 10:1: 96 x sqrt(10) = 304 -> 256 on the CPU (its bound), 288 on CUDA (within 384).
    long = [(2000, 200)] * 3
    assert choose_img_size(long, 96).img_size == 256
    assert "kept within 64-256 px on cpu" in choose_img_size(long, 96).reason
    assert choose_img_size(long, 96, "cuda").img_size == 288
    # The median decides: a few odd images do not move it.
    mixed = [(250, 100)] * 7 + [(600, 350)] * 2 + [(20, 20)]
    assert choose_img_size(mixed, 96).img_size == 160  # aspect 2.5: 96 x 1.58 = 152 -> 160
    assert IMG_SIZE_BOUNDS["cpu"] == (64, 256) and IMG_SIZE_BOUNDS["cuda"] == (64, 384)


def test_small_images_are_not_upsampled_past_their_size_or_below_the_floor() -> None:
    assert choose_img_size([(72, 24)] * 4, 96).img_size == 64  # capped at 72 -> 64
    assert "capped at the images' own size" in choose_img_size([(72, 24)] * 4, 96).reason
    assert choose_img_size([(40, 40)] * 4, 96).img_size == 64  # the 64 px floor
    assert choose_img_size([(160, 160)] * 4, 96).img_size == 96
    assert choose_img_size([], 96) == SizeChoice(
        96, "96 px: the architecture's default (no image sizes known)"
    )


def test_an_explicit_size_wins_and_only_train_images_count() -> None:
    @dataclass(frozen=True)
    class Sized:
        split: str
        width: int
        height: int

    entries = [Sized("train", 600, 200)] * 3 + [Sized("test", 50, 50)] * 9
    assert resolve_img_size(TrainConfig(), entries).img_size == 160
    assert resolve_img_size(TrainConfig(img_size=40), entries) == SizeChoice(40, "40 px: given")
    # Entries without sizes (older snapshots, stand-ins): the architecture's default.
    assert resolve_img_size(TrainConfig(arch="resnet18"), [object()]).img_size == 128
    assert TrainConfig().resize == "letterbox"  # new trainings letterbox
