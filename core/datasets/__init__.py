"""Labeled datasets: archive checks, import, splits, snapshots and health, datasets from reviews."""
