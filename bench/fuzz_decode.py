"""Fuzzing the decode path for minutes (issue 12): the mutations of tests/core/vision/
test_decode_fuzz.py (bit flips, fields set to extremes, cuts, splices, repeats of valid PNG,
JPEG, TIFF, GIF, WebP and BMP seeds), drawn from a seeded random.Random instead of hypothesis.

Every mutant must decode to a valid array or raise InvalidImageError. Decoding runs in a worker
process, so a case that hangs (no progress for --hang-s) or kills the interpreter (a codec's
segfault) is recorded and the run goes on with the next case. Case i is a pure function of
(--seed, i): for anything else the bytes are written to --out as a reproducer, with a .json
beside them saying how they were made and what happened. One JSON object goes to stdout.

Usage: python bench/fuzz_decode.py [--minutes 10] [--seed 0] [--out bench/out/fuzz_decode]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from common import OUT_DIR, emit
from PIL import features

from core.errors import InvalidImageError
from core.vision import images
from tests.core.vision.fuzz_seeds import mutant, random_mutations, seeds

SEED_NAMES = sorted(seeds())
CODECS = ("pil", "jpg", "libtiff", "webp", "zlib")  # versions recorded with the result
MAX_REPRODUCERS = 20  # per kind of failure


def draw(seed: int, index: int) -> dict[str, Any]:
    """Case index of a run: the seed image, its mutations, and how it is decoded."""
    rng = random.Random(f"{seed}:{index}")
    return {
        "seed_image": rng.choice(SEED_NAMES),
        "mutations": random_mutations(rng),
        "fix_png_crcs": rng.random() < 0.5,
        "grayscale": rng.random() < 0.3,
        "max_side": 32 if rng.random() < 0.3 else None,
    }


def case_bytes(case: dict[str, Any]) -> bytes:
    """The mutated file a drawn case decodes."""
    return mutant(case["seed_image"], case["mutations"], case["fix_png_crcs"])


def check(data: bytes, grayscale: bool, max_side: int | None) -> bool:
    """True: a valid array; False: InvalidImageError; anything else raises (AssertionError for
    a malformed array)."""
    try:
        info, arr = images.decode_with_info(
            data, name="fuzzed", grayscale=grayscale, max_side=max_side
        )
    except InvalidImageError:
        return False
    assert arr.dtype.name == "uint8" and arr.ndim == (2 if grayscale else 3), arr.shape
    assert 0 < arr.shape[0] * arr.shape[1] <= images.DecodeLimits().max_pixels, arr.shape
    assert max_side is not None or arr.shape[:2] == (info.height, info.width), arr.shape
    return True


def worker(seed: int, start: int, progress: Any, counts: Any, slowest: Any, log: Path) -> None:
    """Decode cases start, start+1, ... until killed; progress holds the case being decoded.
    Exceptions go to log, one JSON line each (a file survives the worker being killed)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # libtiff and libjpeg print a warning for most damaged files
    warnings.simplefilter("ignore")
    index = start
    with open(log, "a") as errors:
        while True:
            progress.value = index
            case = draw(seed, index)
            row = 3 * SEED_NAMES.index(case["seed_image"])
            started = time.perf_counter()
            try:
                refused = not check(case_bytes(case), case["grayscale"], case["max_side"])
                counts[row + int(refused)] += 1
            except Exception as e:  # what the product must never let out: recorded, not fatal
                counts[row + 2] += 1
                line = {"index": index, "kind": type(e).__name__, "message": str(e)[:300]}
                errors.write(json.dumps({**line, "traceback": traceback.format_exc(limit=6)}))
                errors.write("\n")
                errors.flush()
            took = time.perf_counter() - started
            if took > slowest[0]:
                slowest[0], slowest[1] = took, float(index)
            index += 1


class Failures:
    """What went wrong, by kind, with a reproducer for the first few of each."""

    def __init__(self, out: Path, seed: int) -> None:
        self.out, self.seed = out, seed
        self.kinds: dict[str, dict[str, Any]] = {}

    def record(self, kind: str, index: int, message: str, trace: str = "") -> None:
        entry = self.kinds.setdefault(kind, {"count": 0, "first_message": message})
        entry["count"] += 1
        shown = entry.setdefault("reproducers", [])
        if len(shown) < MAX_REPRODUCERS:
            case = draw(self.seed, index)
            path = self.out / f"{kind}-{index}.bin"
            path.write_bytes(case_bytes(case))
            detail = {"seed": self.seed, "index": index, **case, "kind": kind}
            detail |= {"message": message, "traceback": trace}
            path.with_suffix(".json").write_text(json.dumps(detail, indent=2))
            shown.append(str(path))

    def read_log(self, log: Path) -> None:
        """The exceptions workers wrote (a last line cut by a kill is skipped)."""
        for text in log.read_text().splitlines():
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                continue
            self.record(line["kind"], line["index"], line["message"], line["traceback"])


def fuzz(minutes: float, seed: int, failures: Failures, hang_s: float) -> dict[str, Any]:
    """Run workers until the time is up, replacing one that hangs or dies; the counts."""
    ctx = mp.get_context("fork")
    progress = ctx.Value("q", 0, lock=False)
    counts = ctx.Array("q", 3 * len(SEED_NAMES), lock=False)  # decoded, refused, other
    slowest = ctx.Array("d", [0.0, -1.0], lock=False)
    log = failures.out / "exceptions.jsonl"
    log.write_text("")
    deadline = time.perf_counter() + minutes * 60
    start = lost = 0
    while time.perf_counter() < deadline:
        proc = ctx.Process(target=worker, args=(seed, start, progress, counts, slowest, log))
        proc.start()
        seen, since, hung = -1, time.perf_counter(), False
        while proc.is_alive() and time.perf_counter() < deadline and not hung:
            time.sleep(0.2)
            if progress.value != seen:
                seen, since = progress.value, time.perf_counter()
            elif time.perf_counter() - since > hang_s:
                hung = True
                failures.record("hang", seen, f"no progress for {hang_s:.0f} s")
        stopped = proc.is_alive()  # still running: we stop it (time is up, or it hung)
        proc.kill()
        proc.join()
        if not stopped:  # it died by itself: a codec crashed the interpreter
            code = proc.exitcode or 0
            kind = f"crash_signal_{-code}" if code < 0 else f"crash_exit_{code}"
            failures.record(kind, progress.value, f"the decoding process died ({kind})")
        lost += int(hung or not stopped)
        start = progress.value + 1
    failures.read_log(log)
    per_seed = {n: list(counts[3 * i : 3 * i + 3]) for i, n in enumerate(SEED_NAMES)}
    return {"per_seed": per_seed, "lost": lost, "slowest": (slowest[0], int(slowest[1]))}


def run(minutes: float, seed: int, out: Path, hang_s: float) -> dict[str, Any]:
    """Fuzz for the given minutes; the summary of what happened."""
    failures = Failures(out, seed)
    started = time.perf_counter()
    result = fuzz(minutes, seed, failures, hang_s)
    seconds = time.perf_counter() - started
    per_seed = result["per_seed"]
    decoded, refused, other = (sum(v[k] for v in per_seed.values()) for k in range(3))
    tried = decoded + refused + other + result["lost"]
    took, slow_index = result["slowest"]
    bad = failures.kinds
    outcomes = ("decoded", "refused", "other")
    return {
        "bench": "fuzz_decode",
        "minutes": minutes,
        "seed": seed,
        "seconds": round(seconds, 1),
        "cases_tried": tried,
        "cases_per_second": round(tried / seconds, 1),
        "clean_decodes": decoded,
        "invalid_image_errors": refused,
        "other_exceptions": {k: v for k, v in bad.items() if k != "hang" and "crash" not in k},
        "hangs": bad.get("hang", {"count": 0}),
        "crashes": {k: v for k, v in bad.items() if "crash" in k},
        "slowest_case_s": round(took, 3),
        "slowest_case": draw(seed, slow_index) if slow_index >= 0 else None,
        "by_seed": {n: dict(zip(outcomes, v, strict=True)) for n, v in per_seed.items()},
        "decoders": {lib: features.version(lib) for lib in CODECS},
        "reproducers_dir": str(out),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT_DIR / "fuzz_decode")
    # The slowest clean decode (50 Mpx) takes about 2 s; a machine shared with others is slower.
    parser.add_argument("--hang-s", type=float, default=30.0, help="a case taking longer hangs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    emit(run(args.minutes, args.seed, args.out, args.hang_s))


if __name__ == "__main__":
    main()
