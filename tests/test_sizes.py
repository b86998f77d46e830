"""Ratio parsing and size maths, tested directly (pure functions)."""

import pytest

from flux_api.errors import APIError
from flux_api.generation.sizes import Ratio, parse_ratio, size_for_ratio, upstream_size

# (prompt, text sent to the model, ratio). The playground's static/ratio.js must agree on every
# row: tests/test_playground.py runs it over this table.
RATIO_CASES = [
    ("a red fox in snow 16:9", "a red fox in snow", Ratio(16, 9)),
    ("a red fox in snow, 3:2  ", "a red fox in snow", Ratio(3, 2)),
    ("a red fox --ar 9:16 in snow", "a red fox in snow", Ratio(9, 16)),
    ("a red fox in snow --ar 21:9", "a red fox in snow", Ratio(21, 9)),
    ("一只狐狸在雪地里 16：9", "一只狐狸在雪地里", Ratio(16, 9)),
    ("一只狐狸在雪地里，１６：９。", "一只狐狸在雪地里", Ratio(16, 9)),
    ("a red fox in snow", "a red fox in snow", None),
    # Punctuation after a final ratio, and brackets around it.
    ("a fox 16:9.", "a fox", Ratio(16, 9)),
    ("a fox, 16:9!", "a fox", Ratio(16, 9)),
    ("a fox (16:9)", "a fox", Ratio(16, 9)),
    ("a fox [16 : 9].", "a fox", Ratio(16, 9)),
    ("a fox（16：9）", "a fox", Ratio(16, 9)),
    ("a fox. 16:9", "a fox.", Ratio(16, 9)),
    ("a fox 16:9\n", "a fox", Ratio(16, 9)),
    ("16:9", "", Ratio(16, 9)),
    # Only the last ratio counts, and only it is removed.
    ("a fox 16:9 3:2", "a fox 16:9", Ratio(3, 2)),
    ("a fox 16:9 (3:2)", "a fox 16:9", Ratio(3, 2)),
    # --ar wins over a final ratio; the last --ar counts.
    ("a fox --ar 16:9 in snow 3:2", "a fox in snow 3:2", Ratio(16, 9)),
    ("a fox --ar 16:9 --ar 2:3", "a fox", Ratio(2, 3)),
    ("a fox --ar 16:9 --ar 1:1", "a fox", Ratio(1, 1)),
    ("--ar 3:2 a fox --ar 16:9, in snow --aspect 2:3", "a fox, in snow", Ratio(2, 3)),
    ("a fox --AR 16:9.", "a fox.", Ratio(16, 9)),
    ("a fox --ar 16:9, in snow", "a fox, in snow", Ratio(16, 9)),
]


@pytest.mark.parametrize("prompt, text, ratio", RATIO_CASES)
def test_ratio_is_read_at_the_end_or_after_ar(prompt, text, ratio):
    assert parse_ratio(prompt) == (text, ratio)


# Ratios anywhere but the end (or after --ar) are text.
TEXT_CASES = [
    "meet me at 10:30 by the old clock tower",
    "a 16:9 widescreen television on a desk",
    "score 3:2 at half time",
    "the clock said 10:30 (roughly) at dusk",
    "a sign reading at10:30",
    "a sign reading 16:9x",
    "verse John 3:16: love",
    "a fox (16:9 3:2)",
]


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
