"""Group py-spy samples by where the time goes, for bench/README.md's profile table.

    py-spy record --pid <worker> --gil --rate 200 --duration 28 --format raw -o prof-<pid>.txt
    python bench/profile_groups.py prof-*.txt

(one `py-spy record` per gunicorn worker while bench/run.py's wrk load runs). Each sample is
counted once: in the first group below its stack passes through, else by the nearest frame of
Flask/werkzeug, gunicorn or our code.
"""

from __future__ import annotations

import sys
from collections import Counter

GROUPS = [  # (a frame's text contains, group), first match wins
    ("Ledger.__call__", "usage ledger (diskcache + lock)"),
    ("Metrics.count", "metrics (prometheus multiprocess)"),
    ("log_lines.py", "log lines (format + queue)"),
    ("QueueListener", "log writer thread"),
    ("decode (flux_api/upstream/workers_ai/answers", "answer: JSON + base64 + checks"),
    ("read_body (flux_api/upstream/http", "Workers AI call: reading the body"),
    ("_HeadersByDeadline.getresponse", "Workers AI call: status + headers (http.client)"),
    ("Transport._post", "Workers AI call: requests/urllib3 send"),
    ("WorkersAIClient", "Workers AI client (slots, accounts, events)"),
    ("DiskImageStore", "image store (file + SQLite)"),
    ("image_size", "Pillow: reading the image header"),
    ("conversation/", "chat: client prompts, follow-ups"),
    ("jsonify", "JSON answer (Flask jsonify)"),
    ("requests_in.py", "request body (JSON parse, checks)"),
]
NEAREST = [
    ("flux_api/", "our other code"),
    ("flask/", "Flask/werkzeug"),
    ("werkzeug/", "Flask/werkzeug"),
    ("gunicorn/", "gunicorn (loop, parsing, writing)"),
]


def group_of(frames: list[str]) -> str:
    for part, group in GROUPS:
        if any(part in frame for frame in frames):
            return group
    for frame in reversed(frames):
        for part, group in NEAREST:
            if part in frame:
                return group
    return "other (threads, futures, stdlib)"


def main() -> None:
    counts: Counter[str] = Counter()
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as samples:
            for line in samples:
                stack, _, count = line.rstrip().rpartition(" ")
                counts[group_of(stack.split(";"))] += int(count)
    total = sum(counts.values())
    print(f"{total} samples\n\n| where | share |\n|---|---|")
    for group, count in counts.most_common():
        print(f"| {group} | {count / total * 100:.1f} % |")


if __name__ == "__main__":
    main()
