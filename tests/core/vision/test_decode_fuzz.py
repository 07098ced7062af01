"""Fuzzing the decode path (issue 12): valid PNG, JPEG, TIFF, GIF, WebP and BMP files with bits
flipped, fields set to extremes, cuts, splices from other files and repeats decode to a valid
array or raise InvalidImageError, never anything else. A short deterministic run for CI;
bench/fuzz_decode.py runs the same mutations for minutes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InvalidImageError
from core.vision import images
from core.vision.images import DecodeLimits
from tests.core.vision.fuzz_seeds import EXTREMES, HEADER_BYTES, KINDS, Mutation, mutant, seeds

LIMITS = DecodeLimits()

mutations = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.one_of(st.integers(0, HEADER_BYTES - 1), st.integers(0, 1 << 20)),
        st.one_of(st.sampled_from(EXTREMES), st.integers(0, (1 << 32) - 1)),
        st.integers(0, (1 << 16) - 1),
    ),
    min_size=1,
    max_size=4,
)


def check_decode(data: bytes, grayscale: bool, max_side: int | None) -> bool:
    """Decode untrusted bytes: True for a valid array, False for a clean rejection; anything
    else (another exception, a malformed array) fails the test."""
    try:
        info, arr = images.decode_with_info(
            data, name="fuzzed", limits=LIMITS, grayscale=grayscale, max_side=max_side
        )
    except InvalidImageError as e:
        assert str(e).startswith("fuzzed: ")
        return False
    assert arr.dtype == np.uint8 and arr.flags.writeable
    assert arr.ndim == (2 if grayscale else 3) and (grayscale or arr.shape[2] == 3)
    assert 0 < arr.shape[0] * arr.shape[1] <= LIMITS.max_pixels
    if max_side is None:
        assert arr.shape[:2] == (info.height, info.width)
    return True


@pytest.mark.parametrize("name", sorted(seeds()))
def test_every_seed_is_a_valid_image(name: str) -> None:
    assert check_decode(seeds()[name], grayscale=False, max_side=None)


@pytest.mark.timeout(300)
@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same examples on every CI run
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.sampled_from(sorted(seeds())),
    changes=mutations,
    fix_crcs=st.booleans(),
    grayscale=st.booleans(),
    max_side=st.sampled_from([None, 32]),
)
def test_mutated_images_decode_or_are_refused_cleanly(
    seed: str, changes: list[Mutation], fix_crcs: bool, grayscale: bool, max_side: int | None
) -> None:
    check_decode(mutant(seed, changes, fix_crcs), grayscale, max_side)
