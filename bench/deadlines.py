"""How long a client waits when Workers AI misbehaves, against UPSTREAM_TIMEOUT: prints the
answer, the time it took, its overshoot and the upstream calls made, for each fault.

    python bench/deadlines.py [--timeouts 2,5]

The service runs under the shipped gunicorn.conf.py (one worker) against the fake Workers AI.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.fakes.server import BackgroundServer  # noqa: E402
from tests.support.fakes.workers_ai import ACCOUNT_ID, TOKEN, FakeWorkersAI, Scripted  # noqa: E402
from tests.support.programs import Gunicorn  # noqa: E402

CAPACITY = Scripted(429, 3040, "AiError: Capacity temporarily exceeded, please try again.")
FAULTS = {
    "headers, then 1 byte every 0.5 s": ([Scripted(mode="trickle", trickle_every=0.5)], 0.0),
    "never answers": ([Scripted(mode="hang")], 0.0),
    "3040 after 0.6 s, every time": ([CAPACITY] * 10, 0.6),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeouts", default="2,5", help="UPSTREAM_TIMEOUT values to try")
    args = parser.parse_args()
    fake = FakeWorkersAI()
    print("| UPSTREAM_TIMEOUT | upstream | answer | seconds | overshoot | upstream calls |")
    print("|---|---|---|---|---|---|")
    with BackgroundServer(fake.app()) as upstream, tempfile.TemporaryDirectory() as tmp:
        for timeout in args.timeouts.split(","):
            env = {
                "API_KEY": "sk-bench",
                "CF_ACCOUNT_ID": ACCOUNT_ID,
                "CF_API_TOKEN": TOKEN,
                "CF_API_BASE": f"{upstream.url}/client/v4/accounts/{{account_id}}/ai/run",
                "DATA_DIR": str(Path(tmp) / "data"),
                "UPSTREAM_TIMEOUT": timeout,
            }
            server = Gunicorn(env, Path(tmp), workers=1).start()
            try:
                for name, (script, latency) in FAULTS.items():
                    fake.reset()
                    fake.latency = latency
                    fake.script(*script)
                    started = time.monotonic()
                    response = requests.post(
                        server.url + "/v1/chat/completions",
                        json={"messages": [{"role": "user", "content": "a fox"}]},
                        headers={"Authorization": "Bearer sk-bench"},
                        timeout=600,
                    )
                    took = time.monotonic() - started
                    print(
                        f"| {timeout} s | {name} | {response.status_code} | {took:.2f} | "
                        f"{took - float(timeout):+.2f} | {len(fake.calls)} |"
                    )
            finally:
                server.stop()
    fake.reset()


if __name__ == "__main__":
    main()
