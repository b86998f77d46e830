"""The operator's commands, run beside the service with its settings (the same environment or
.env): `python -m flux_api doctor`, `python -m flux_api accounts`.

Each command is a module with `add_arguments(parser)` and `run(args) -> int` (the exit code),
imported only when named, so one command's imports never slow or break another.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

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
    # Only the named command's module is imported, before parsing, so that its own options
    # (and its --help) are known; without a known command, parsing says what is wrong.
    argv = sys.argv[1:] if argv is None else argv
    name = next((arg for arg in argv if arg in COMMANDS), None)
    if name is not None:
        module = importlib.import_module(f"flux_api.cli.{name}")
        module.add_arguments(subparsers[name])
    args = parser.parse_args(argv)
    try:
        return importlib.import_module(f"flux_api.cli.{args.command}").run(args)
    except BrokenPipeError:
        # Its reader stopped early (`| head`): Python's documented way out, so that the exit
        # does not try the closed pipe again and print a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
