"""Which torch device runs a model, and whether the CPU computes bf16 natively."""

from __future__ import annotations

import torch

from core.errors import ValidationError


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available else cpu; 'cuda' without a GPU is a readable error."""
    name = name.lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValidationError("device 'cuda' was requested but no CUDA GPU is available")
        return torch.device("cuda")
    raise ValidationError(f"device must be auto, cpu or cuda, not {name!r}")


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 dot-product instructions (AVX512-BF16 or AMX).

    Without them oneDNN emulates bf16 and autocast gets slower, not faster.
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False
