"""What the follow-up rules cost on the largest histories and messages a client can send: the
time `earlier_image` and `asks_for_change` take on inputs built to be slow (near-miss image
links, URL starts without an end, 10^5 parts or messages, megabyte messages). Both read a
bounded part of their input (tests/unit/test_followups.py checks the bounds); this prints the time.

    python bench/followups.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flux_api.conversation.followups import asks_for_change, earlier_image

NEAR_MISSES = "x" + ("/image/" + "A" * 16 + ",") * 200_000
USER = {"role": "user", "content": "x"}
HISTORIES = {
    "one-huge-reply": [{"role": "assistant", "content": NEAR_MISSES}, USER],
    "url-starts": [{"role": "assistant", "content": "http://" * 1_000_000}, USER],
    "many-parts": [
        {"role": "assistant", "content": [{"type": "text", "text": NEAR_MISSES[:2400]}] * 100_000},
        USER,
    ],
    "many-replies": [{"role": "assistant", "content": NEAR_MISSES}] * 100_000 + [USER],
    "many-user-messages": [USER] * 1_000_000,
}
MESSAGES = {
    "make-it x 500k": "make it " * 500_000,
    "a x 1M": "a " * 1_000_000,
    "把它 x 500k": "把它" * 500_000,
    "it x 1M": "it" * 1_000_000,
}


def slowest_ms(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return max(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    print(f"slowest of {repeat} runs, ms")
    for name, history in HISTORIES.items():
        ms = slowest_ms(functools.partial(earlier_image, history), repeat)
        print(f"earlier_image    {name:20} {ms:8.2f}")
    for name, text in MESSAGES.items():
        ms = slowest_ms(functools.partial(asks_for_change, text), repeat)
        print(f"asks_for_change  {name:20} {ms:8.2f}")


if __name__ == "__main__":
    main()
