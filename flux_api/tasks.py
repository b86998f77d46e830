"""Open WebUI's background tasks: titles, tags, follow-ups… sent to the chat model itself.

Their prompts start with "### Task:". Generating an image for them would waste quota and put
stray pictures in the chat, so they get a short answer in the JSON shape Open WebUI asks for.
"""

from __future__ import annotations

import json

TASK_MARKER = "### Task:"


def is_task_prompt(text: str) -> bool:
    return text.lstrip().startswith(TASK_MARKER)


def _first_user_words(text: str) -> list[str] | None:
    r"""The first five words of the first `USER:` line that has any, or None.

    A loop over lines, because the regex it replaces (`^\s*USER:` under re.M) was quadratic: from
    each line start its `\s*` rescanned every blank line below (seconds of CPU for 62 KB of "\n").
    """
    for line in text.split("\n"):
        line = line.lstrip()
        if line.startswith("USER:"):
            words = line[len("USER:") :].split()
            if words:
                return words[:5]
    return None


def task_reply(text: str) -> str:
    """A small, valid answer to the task, without calling any upstream."""
    task = text.lstrip()[len(TASK_MARKER) :].strip().split("\n\n", 1)[0].lower()
    if "title" in task:
        words = _first_user_words(text) or ["Image", "generation"]
        return json.dumps({"title": "🎨 " + " ".join(words)}, ensure_ascii=False)
    if "tags" in task:
        return json.dumps({"tags": ["Image generation"]})
    if "follow-up" in task or "follow up" in task:
        return json.dumps({"follow_ups": []})
    if "quer" in task:  # search / retrieval queries
        return json.dumps({"queries": []})
    if "emoji" in task:
        return "🎨"
    return "This model generates images; send it a description of the picture you want."
