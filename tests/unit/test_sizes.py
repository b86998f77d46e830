"""Ratio parsing and size maths, tested directly (pure functions)."""

import pytest

from flux_api.errors import APIError
from flux_api.generation.sizes import Ratio, parse_ratio, size_for_ratio, upstream_size
from tests.support.ratio_cases import RATIO_CASES, TEXT_CASES


@pytest.mark.parametrize("prompt, text, ratio", RATIO_CASES)
def test_ratio_is_read_at_the_end_or_after_ar(prompt, text, ratio):
    assert parse_ratio(prompt) == (text, ratio)


@pytest.mark.parametrize("prompt", TEXT_CASES)
def test_ratio_elsewhere_in_the_prompt_stays_text(prompt):
    assert parse_ratio(prompt) == (prompt, None)


@pytest.mark.parametrize(
    "ratio, size",
    [
        (None, (1024, 1024)),
        (Ratio(1, 1), (1024, 1024)),
        (Ratio(1, 2), (512, 1024)),
        (Ratio(3, 2), (768, 512)),
        (Ratio(3, 4), (768, 1024)),
        (Ratio(16, 9), (1024, 576)),
        (Ratio(9, 16), (576, 1024)),
        (Ratio(32, 18), (1024, 576)),  # reduced to 16:9 first
        (Ratio(21, 9), (1024, 448)),  # 438.9 rounds to 7 × 64
        (Ratio(2, 3), (704, 1024)),  # 682.7 rounds to 11 × 64
        (Ratio(4, 1), (1024, 256)),
        (Ratio(1, 4), (256, 1024)),
        (Ratio(5, 4), (1024, 832)),
    ],
)
def test_size_for_ratio(ratio, size):
    assert size_for_ratio(ratio) == size


@pytest.mark.parametrize("ratio", [Ratio(5, 1), Ratio(1, 9), Ratio(0, 3)])
def test_ratio_outside_1_4_to_4_1_is_a_400_naming_the_range(ratio):
    with pytest.raises(APIError) as caught:
        size_for_ratio(ratio)
    assert caught.value.status == 400
    if ratio.width and ratio.height:
        assert "1:4 to 4:1" in caught.value.message


def test_upstream_size_keeps_the_target_when_the_model_allows_it():
    assert upstream_size((1024, 576), (256, 1920)) == (1024, 576)


def test_upstream_size_is_none_for_models_that_take_no_size():
    assert upstream_size((768, 512), None) is None


def test_upstream_size_scales_into_the_model_range_keeping_the_ratio():
    assert upstream_size((2048, 1024), (256, 1920)) == (1920, 960)
    assert upstream_size((1024, 256), (512, 2048)) == (2048, 512)
