"""`python -m flux_api doctor`: checks the settings, the store and every upstream the service
uses, one line per check (ok, warn or fail, with the fix); exit 0 when none failed, else 1.
`--json` prints one JSON document with every check instead. It reads the settings as the service
does (the settings file, then the environment), and spends nothing: the Cloudflare calls are
free, the optimizer's is one token."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from flux_api.cli.checks import FAIL, Check
from flux_api.cli.checks.cloudflare import cloudflare_checks
from flux_api.cli.checks.optimizer import optimizer_check
from flux_api.cli.checks.public_url import public_url_check
from flux_api.cli.checks.secrets import scrub, secrets_in
from flux_api.cli.checks.settings import load
from flux_api.cli.checks.store import store_check
from flux_api.config.environment import SettingsError, read_environment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document with every check"
    )


def run(args: argparse.Namespace) -> int:
    checks = run_checks()
    secrets = _secrets()
    if args.json:
        document = {
            "ok": not failed(checks),
            "checks": [{k: scrub(v, secrets) for k, v in asdict(c).items()} for c in checks],
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        for check in checks:
            print(scrub(line(check), secrets))
    return 1 if failed(checks) else 0


def run_checks() -> list[Check]:
    """Every check, in order: the settings first (without them nothing else can be checked)."""
    checked, settings = load()
    if settings is None:
        return [checked]
    checks = [checked, store_check(settings), *cloudflare_checks(settings)]
    optimizer = optimizer_check(settings)
    if optimizer is not None:
        checks.append(optimizer)
    checks.append(public_url_check(settings))
    return checks


def failed(checks: list[Check]) -> bool:
    return any(check.status == FAIL for check in checks)


def line(check: Check) -> str:
    """`fail  name: detail. Fix: …` (the fix on failures and warnings that have one)."""
    text = f"{check.status:<4}  {check.name}: {check.detail}"
    if not check.fix:
        return text
    return f"{text.rstrip('.')}. Fix: {check.fix.rstrip('.')}."


def _secrets() -> list[str]:
    try:
        return secrets_in(read_environment())
    except SettingsError:  # the settings file cannot be read: the settings check said so
        return []
