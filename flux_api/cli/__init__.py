"""The operator's commands, run beside the service with its settings (the same environment or
.env): `python -m flux_api doctor`, `python -m flux_api accounts`.

Each command is a module with `add_arguments(parser)` and `run(args) -> int` (the exit code),
imported only when named, so one command's imports never slow or break another.
"""

from __future__ import annotations

import argparse
import importlib

COMMANDS = {
    "doctor": "check the settings, the store and every upstream, one line per check",
    "accounts": "each Cloudflare account's state and neurons today; unpark one",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flux_api")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subparsers = {
        name: commands.add_parser(name, help=summary, description=summary)
        for name, summary in COMMANDS.items()
    }
    # Which command first (its own options are not known yet), then its module and options.
    named, _ = parser.parse_known_args(argv)
    module = importlib.import_module(f"flux_api.cli.{named.command}")
    module.add_arguments(subparsers[named.command])
    return module.run(parser.parse_args(argv))
