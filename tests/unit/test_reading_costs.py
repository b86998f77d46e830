"""What reading a chat may cost, found by a review of the real-client work: reading a message's
tags is linear in its length (the costs through the service: tests/system/test_chat_costs.py)."""

from __future__ import annotations

import time

import pytest

from flux_api.conversation import background
from flux_api.conversation import messages as conversation


def cpu_seconds(work) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


@pytest.mark.parametrize(
    "text",
    [
        "<attached_files>" * 30_000,  # unclosed, again and again: a regex rescans from each
        "### Task:\nRespond to the user query using the provided context\n<context>"
        + "<source id='1'>" * 30_000
        + "</context>",
    ],
    ids=["attached_files", "sources"],
)
def test_reading_a_message_is_linear_in_its_length(text):
    assert cpu_seconds(lambda: conversation.read(text)) < 0.5  # was minutes for 480 KB


def test_reading_a_failure_note_is_linear_in_its_length():
    note = "<context>Image generation was attempted but failed " + "error occurred: " * 30_000
    messages = [{"role": "system", "content": note}, {"role": "user", "content": "x"}]
    assert cpu_seconds(lambda: background.note(messages)) < 0.5


def test_many_system_messages_cost_little():
    messages = [{"role": "system", "content": "be nice"}] * 100_000
    messages.append({"role": "user", "content": "a fox"})
    assert cpu_seconds(lambda: background.answer(messages)) < 1.0  # was 7.8 s for 200,000
