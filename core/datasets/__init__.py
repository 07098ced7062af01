"""Labeled datasets: archive checks (archives), listing a source (sources), import (importer),
splits, health reports, snapshots, the recorded service (service) and datasets from reviews."""
