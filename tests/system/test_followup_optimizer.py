"""Follow-ups, when the optimizer is on: it decides whether a message asks to change the earlier
image, asked over HTTP (the fake); its answers read, its failures an OptimizerError (the cue
rule and the earlier image: tests/unit/test_followups.py)."""

from __future__ import annotations

import json
import time

import pytest

from flux_api.upstream.optimizer import (
    FOLLOW_UP_SYSTEM_MESSAGE,
    OptimizerClient,
    OptimizerError,
)
from tests.support.fakes.optimizer import OPTIMIZER_KEY, OPTIMIZER_MODEL


@pytest.fixture
def optimizer(fake_optimizer) -> OptimizerClient:
    return OptimizerClient(fake_optimizer.url, OPTIMIZER_MODEL, OPTIMIZER_KEY, timeout=1)


def test_the_optimizer_is_asked_with_the_earlier_prompt_and_the_message(optimizer, fake_optimizer):
    fake_optimizer.answer = '{"edit": true, "prompt": "Make the barn blue; keep the rest."}'
    assert optimizer.follow_up("a red barn", "make it blue", 200) == (
        True,
        "Make the barn blue; keep the rest.",
    )
    (call,) = fake_optimizer.calls
    assert call["headers"]["Authorization"] == f"Bearer {OPTIMIZER_KEY}"
    assert call["body"]["model"] == OPTIMIZER_MODEL
    assert call["body"]["messages"] == [
        {"role": "system", "content": FOLLOW_UP_SYSTEM_MESSAGE},
        {"role": "user", "content": "Earlier prompt: a red barn\nMessage: make it blue"},
    ]


def test_the_optimizer_may_say_it_is_a_new_picture(optimizer, fake_optimizer):
    fake_optimizer.answer = '{"edit": false, "prompt": "A sailing boat on a calm sea at noon"}'
    assert optimizer.follow_up("a red barn", "a sailing boat", 200) == (
        False,
        "A sailing boat on a calm sea at noon",
    )


@pytest.mark.parametrize(
    "answer",
    [
        '```json\n{"edit": true, "prompt": "Make it blue"}\n```',
        '<think>they mean the barn</think>{"edit": true, "prompt": "Make it blue"}',
        'Sure! {"edit": true, "prompt": "\\"Make it blue\\""}',
    ],
)
def test_the_wrappers_models_add_are_read_through(optimizer, fake_optimizer, answer):
    fake_optimizer.answer = answer
    assert optimizer.follow_up("a barn", "make it blue", 200) == (True, "Make it blue")


def test_the_optimizers_prompt_is_cut_to_the_limit(optimizer, fake_optimizer):
    fake_optimizer.answer = json.dumps({"edit": False, "prompt": "word " * 100})
    edit, prompt = optimizer.follow_up("a barn", "a forest", 50)
    assert not edit and len(prompt) <= 50 and prompt.startswith("word word")


@pytest.mark.parametrize(
    "answer",
    [
        "Make the barn blue.",
        '{"edit": "yes", "prompt": "Make it blue"}',
        '{"edit": true}',
        '{"edit": true, "prompt": 3}',
        '{"edit": true, "prompt": "   "}',
        '["edit", true]',
        '{"edit": true, "prompt": "Make it blue"',
        "[" * 100_000 + "{}" + "]" * 100_000,
        "",
    ],
)
def test_a_malformed_answer_is_an_optimizer_error(optimizer, fake_optimizer, answer):
    fake_optimizer.answer = answer
    with pytest.raises(OptimizerError):
        optimizer.follow_up("a barn", "make it blue", 200)


@pytest.mark.parametrize("mode", ["error", "garbage", "hang"])
def test_an_optimizer_that_fails_is_an_optimizer_error(optimizer, fake_optimizer, mode):
    fake_optimizer.mode = mode
    started = time.monotonic()
    with pytest.raises(OptimizerError):
        optimizer.follow_up("a barn", "make it blue", 200)
    assert time.monotonic() - started < 3  # OPTIMIZER_TIMEOUT bounds it


def test_optimize_still_asks_for_a_prompt(optimizer, fake_optimizer):
    assert optimizer.optimize("a fox", "1:1", 200).startswith("A cinematic, detailed rendering")
    assert (
        fake_optimizer.calls[0]["body"]["messages"][1]["content"]
        == "Aspect ratio: 1:1\nIdea: a fox"
    )
