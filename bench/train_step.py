"""How fast is one training step of the demo's model on this CPU, and what would change it?
(issue 11: the demo's seeding time is its training time)

Times forward + backward + AdamW of defectnet (6 classes, grayscale) on random 64 px batches,
after 3 warm-up steps: batch 64 and 128 on 2 threads, batch 64 with channels_last, under bf16
autocast (what training uses on a CPU with native bf16, core.vision.device) with and without
channels_last, batch 64 on one thread, and two one-thread runs side by side in separate
processes (training both demo models at once). Compute only: the real training adds
augmentation and a validation pass.

Prints one JSON object. Usage: python bench/train_step.py [--steps 20] [--size 64]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

from common import emit, machine


def images_per_second(batch: int, threads: int, channels_last: bool, size: int, steps: int,
                      bf16: bool = False) -> float:  # fmt: skip
    # Deferred: torch loads only in the measuring process.
    import torch
    import torch.nn.functional as F

    from core.vision.architectures import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model("defectnet", 6, 1)
    x = torch.randn(batch, 1, size, size)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(
            memory_format=torch.channels_last)  # fmt: skip
    y = torch.randint(0, 6, (batch,))
    optimiser = torch.optim.AdamW(model.parameters(), 1e-3)
    for step in range(steps + 3):
        if step == 3:
            started = time.perf_counter()
        optimiser.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        optimiser.step()
    return batch * steps / (time.perf_counter() - started)


def _child(batch: int, threads: int, size: int, steps: int) -> subprocess.Popen[str]:
    code = (
        f"import sys; sys.path[:0] = ['bench', '.']; import train_step; "
        f"print(train_step.images_per_second({batch}, {threads}, False, {size}, {steps}))"
    )
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={"OMP_NUM_THREADS": str(threads), "PATH": ""})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    runs: dict[str, Any] = {}
    for name, batch, threads, last, bf16 in (
        ("batch64_2threads", 64, 2, False, False),
        ("batch128_2threads", 128, 2, False, False),
        ("batch64_2threads_channels_last", 64, 2, True, False),
        ("batch64_2threads_bf16", 64, 2, False, True),
        ("batch64_2threads_bf16_channels_last", 64, 2, True, True),
        ("batch64_1thread", 64, 1, False, False),
    ):
        rate = images_per_second(batch, threads, last, args.size, args.steps, bf16)
        runs[name] = round(rate, 1)
    pair = [_child(64, 1, args.size, args.steps) for _ in range(2)]
    side_by_side = [round(float(p.communicate()[0].strip().splitlines()[-1]), 1) for p in pair]
    runs["two_1thread_runs_side_by_side"] = side_by_side
    runs["two_1thread_runs_total"] = round(sum(side_by_side), 1)
    from core.vision.device import cpu_has_native_bf16

    emit({"bench": "train_step", "machine": machine(), "native_bf16": cpu_has_native_bf16(),
          "size": args.size, "steps": args.steps, "images_per_second": runs})  # fmt: skip


if __name__ == "__main__":
    main()
