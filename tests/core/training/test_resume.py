"""A run killed after an epoch resumes from its last state and ends where it would have."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.training import resume
from core.training.config import EpochReport
from core.training.loop import fit
from tests.core.training.test_loop import make_snapshot, tiny


class Killed(Exception):
    """Stands in for a SIGKILL: the run ends with no chance to clean up."""


def kill_after(epoch: int):
    def on_progress(report: EpochReport) -> None:
        if report.epoch == epoch:
            raise Killed

    return on_progress


def test_a_run_killed_after_epoch_2_resumes_there_and_ends_with_the_same_model(
    tmp_path: Path,
) -> None:
    snap = make_snapshot(tmp_path / "data")
    whole = fit(tiny(epochs=4, seed=5), snap, checkpoint_dir=tmp_path / "whole")
    job_dir = tmp_path / "job"
    with pytest.raises(Killed):
        fit(tiny(epochs=4, seed=5), snap, on_progress=kill_after(2), checkpoint_dir=job_dir)
    assert (job_dir / resume.RESUME_FILE).is_file()
    seen: list[int] = []
    resumed = fit(tiny(epochs=4, seed=5), snap, checkpoint_dir=job_dir,
                  on_progress=lambda r: seen.append(r.epoch))  # fmt: skip
    # The restored epoch is reported once more (the job row catches up), then 3 and 4 train.
    assert seen == [2, 3, 4]
    assert [h.epoch for h in resumed.history] == [1, 2, 3, 4]
    # Weights, optimizer moments, schedule and both generators were restored: the same numbers.
    assert [h.train_loss for h in resumed.history] == [h.train_loss for h in whole.history]
    assert [h.lr for h in resumed.history] == [h.lr for h in whole.history]
    assert resumed.best_epoch == whole.best_epoch
    for a, b in zip(resumed.model.state_dict().values(), whole.model.state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.equal(a, b)
    assert resumed.temperature == whole.temperature


def test_a_state_written_for_another_config_is_not_resumed(tmp_path: Path) -> None:
    snap = make_snapshot(tmp_path / "data", n_per_class=12)
    job_dir = tmp_path / "job"
    with pytest.raises(Killed):
        fit(tiny(epochs=3, seed=1), snap, on_progress=kill_after(2), checkpoint_dir=job_dir)
    seen: list[int] = []
    fit(tiny(epochs=3, seed=2), snap, checkpoint_dir=job_dir,
        on_progress=lambda r: seen.append(r.epoch))  # fmt: skip
    assert seen == [1, 2, 3]


@pytest.mark.parametrize("content", [b"", b"not a safetensors file", b"\xff" * 64])
def test_a_damaged_state_starts_over(tmp_path: Path, content: bytes) -> None:
    snap = make_snapshot(tmp_path / "data", n_per_class=12)
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / resume.RESUME_FILE).write_bytes(content)
    seen: list[int] = []
    res = fit(tiny(epochs=2), snap, checkpoint_dir=job_dir,
              on_progress=lambda r: seen.append(r.epoch))  # fmt: skip
    assert seen == [1, 2] and not res.stopped
    # ... and the damaged file was replaced by this run's state.
    assert resume.load_state(job_dir, _key_of(snap, tiny(epochs=2))) is not None


def _key_of(snap, cfg) -> str:
    n_val = sum(1 for e in snap.entries if e.split == "val")
    return resume.fingerprint(cfg, list(snap.class_names), len(snap.entries) - n_val, n_val)
