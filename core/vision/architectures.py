"""Model registry: architecture name -> constructor, input size and Grad-CAM layer (like timm)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from core.errors import ModelError

log = logging.getLogger(__name__)


class _Block(nn.Module):
    """Residual basic block (two 3x3 convs); a strided 1x1 projection when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )
        # Last BN of each residual branch starts at zero so every block begins as an identity:
        # a well-known trick that makes short schedules with high learning rates stable.
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In place, as torchvision's blocks: BatchNorm's backward needs its input, not its
        # output, and the sum is a fresh tensor; the values are those of torch.relu.
        y = self.bn1(self.conv1(x)).relu_()
        y = self.bn2(self.conv2(y))
        return (y + self.shortcut(x)).relu_()


class DefectNet(nn.Module):
    """Small residual CNN for surface-inspection images (grayscale or RGB, 64-128 px).

    A strided stem halves the input; stage i then runs ``blocks[i]`` residual blocks at
    ``widths[i + 1]`` channels, the first with ``strides[i]``. With the defaults a 96 px image
    is processed at 48, 48, 24, 12 and 6 px and ends as a 6x6 map before global average pooling.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 1,
        widths: tuple[int, ...] = (32, 32, 64, 128, 256),
        strides: tuple[int, ...] = (1, 2, 2, 2),
        blocks: tuple[int, ...] = (1, 1, 1, 1),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        w0 = widths[0]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, w0, 3, 2, 1, bias=False),
            nn.BatchNorm2d(w0),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        for c_in, c_out, stride, n in zip(widths[:-1], widths[1:], strides, blocks, strict=True):
            stages.append(_Block(c_in, c_out, stride))
            stages += [_Block(c_out, c_out, 1) for _ in range(n - 1)]
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(widths[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


def _defectnet(num_classes: int, in_channels: int) -> nn.Module:
    return DefectNet(num_classes, in_channels)


def _defectnet_cam(model: nn.Module) -> nn.Module:
    assert isinstance(model, DefectNet)
    last = model.stages[-1]
    assert isinstance(last, _Block)
    return last.conv2


def _resnet18(num_classes: int, in_channels: int) -> nn.Module:
    from torchvision.models import resnet18  # deferred: torchvision loads only for resnet18

    model = resnet18(weights=None, num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


def _resnet18_cam(model: nn.Module) -> nn.Module:
    layer4 = model.get_submodule("layer4")
    assert isinstance(layer4, nn.Sequential)
    conv = layer4[-1].get_submodule("conv2")
    return conv


def _fold(conv: object, bn: object, keep: nn.Module | None) -> nn.Conv2d | None:
    """The convolution with the BatchNorm after it folded in; None when the pair does not fold."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)) or conv is keep:
        return None
    return fuse_conv_bn_eval(conv.eval(), bn.eval())


def fold_batchnorm(model: nn.Module, keep: nn.Module | None = None) -> int:
    """Fold each eval-mode BatchNorm into the convolution before it, in place; how many folded.

    Covers the pairs these architectures have: attributes ``convN`` + ``bnN`` of one module
    (defectnet's and torchvision's blocks, resnet's stem) and a Conv2d directly followed by a
    BatchNorm2d in an ``nn.Sequential`` (stems, shortcuts). The folded convolution computes the
    pair's output in one pass; the BatchNorm becomes an Identity. ``keep`` (Grad-CAM's layer)
    is never folded: its output, the activations Grad-CAM weighs, must stay the raw convolution.
    For inference copies only: the result cannot be trained.
    """
    folded = 0
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                fused = _fold(module[i], module[i + 1], keep)
                if fused is not None:
                    module[i], module[i + 1] = fused, nn.Identity()
                    folded += 1
        for n in range(1, 4):
            fused = _fold(getattr(module, f"conv{n}", None), getattr(module, f"bn{n}", None), keep)
            if fused is not None:
                setattr(module, f"conv{n}", fused)
                setattr(module, f"bn{n}", nn.Identity())
                folded += 1
    return folded


@dataclass(frozen=True)
class ArchSpec:
    """One registry entry: how to build the model and where Grad-CAM looks."""

    name: str
    build: Callable[[int, int], nn.Module]  # (num_classes, in_channels) -> module
    default_img_size: int
    cam_layer: Callable[[nn.Module], nn.Module]
    description: str
    # The Grad-CAM layer is conv2 of the last residual block, and what follows is exactly
    # relu(bn2(conv2) + shortcut) -> global average pool -> (eval dropout) -> Linear: then the
    # class score's gradient at the layer has a closed form (core.vision.gradcam.OnnxGradCam).
    closed_form_cam: bool = False


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        ArchSpec(
            name="defectnet",
            build=_defectnet,
            default_img_size=96,
            cam_layer=_defectnet_cam,
            description="Small residual CNN (~1.2 M parameters), fast on CPU; the default.",
            closed_form_cam=True,
        ),
        ArchSpec(
            name="resnet18",
            build=_resnet18,
            default_img_size=128,
            cam_layer=_resnet18_cam,
            description="torchvision ResNet-18 trained from scratch (11 M parameters).",
            closed_form_cam=True,
        ),
    )
}


def get_spec(name: str) -> ArchSpec:
    """Registry entry for ``name``; ValueError naming the known architectures otherwise."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"unknown architecture {name!r}; known: {known}") from None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a local safetensors file; any other format is refused, never unpickled.

    A .pt/.pth file is a pickle, and unpickling runs code chosen by whoever made the file, even
    with torch's ``weights_only``; so the error says how to convert one the user trusts.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: weights file not found")
    try:
        return dict(load_file(str(path), device="cpu"))
    except SafetensorError:
        raise ModelError(_not_safetensors(path)) from None
    except OSError as e:
        raise ModelError(f"{path}: cannot read weights ({e.strerror or e})") from None


def _not_safetensors(path: Path) -> str:
    """Why a weights file is refused, with the one-line conversion to run on a trusted file."""
    target = path.with_suffix(".safetensors")
    convert = (
        "import torch; from safetensors.torch import save_file; "
        f"sd = torch.load({str(path)!r}, map_location='cpu', weights_only=True); "
        "sd = sd.get('state_dict', sd); "
        f"save_file({{k: v.contiguous() for k, v in sd.items()}}, {str(target)!r})"
    )
    return (
        f"{path}: not a safetensors file. DefectLens reads initial weights from safetensors only "
        "and never unpickles a weights file (loading a .pt/.pth pickle can run code). If you "
        f'trust the file, convert it once and pass the result:  python -c "{convert}"'
    )


def _init_from(model: nn.Module, path: Path) -> None:
    """Copy every tensor whose name and shape match; adapt an RGB first conv to one channel."""
    source = read_state_dict(path)
    own = model.state_dict()
    loaded, skipped = 0, []
    for key, target in own.items():
        tensor = source.get(key.removeprefix("module."), source.get("module." + key))
        if tensor is None:
            continue
        if (
            tensor.ndim == 4
            and target.ndim == 4
            and tensor.shape[1] == 3
            and target.shape[1] == 1
            and tensor.shape[0] == target.shape[0]
            and tensor.shape[2:] == target.shape[2:]
        ):
            # Grayscale model from RGB weights: the sum keeps the response to a gray input.
            tensor = tensor.sum(dim=1, keepdim=True)
        if tensor.shape != target.shape:
            skipped.append(key)
            continue
        own[key] = tensor.to(target.dtype)
        loaded += 1
    if loaded == 0:
        raise ModelError(f"{path.name}: no tensor matches this architecture")
    model.load_state_dict(own)
    log.info("initialised %d tensors from %s; skipped %s", loaded, path.name, skipped or "none")


def build_model(
    name: str, num_classes: int, in_channels: int, weights_path: Path | None = None
) -> nn.Module:
    """Build a registered architecture, optionally initialised from a local weights file."""
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
    model = get_spec(name).build(num_classes, in_channels)
    if weights_path is not None:
        _init_from(model, Path(weights_path))
    return model


def cam_block(model: nn.Module, layer: nn.Module) -> nn.Module:
    """The residual block whose conv2 is the Grad-CAM layer; ModelError if there is none."""
    for module in model.modules():
        if getattr(module, "conv2", None) is layer and isinstance(
            getattr(module, "bn2", None), nn.BatchNorm2d
        ):
            return module
    raise ModelError("the Grad-CAM layer is not conv2 of a residual block with bn2")


def classifier_head(model: nn.Module) -> tuple[str, nn.Linear]:
    """Name and module of the last Linear layer (its rows are the classes)."""
    found: tuple[str, nn.Linear] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            found = (name, module)
    if found is None:
        raise ModelError("model has no Linear classifier head")
    return found
