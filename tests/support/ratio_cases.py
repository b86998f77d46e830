"""The ratio rule's tables, for its unit test (tests/unit/test_sizes.py) and the playground's."""

from flux_api.generation.sizes import Ratio

# (prompt, text sent to the model, ratio). The playground's static/ratio.js must agree on every
# row: tests/system/test_playground.py runs it over this table.
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
