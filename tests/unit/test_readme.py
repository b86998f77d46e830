"""The README stays true: CI runs its test command, and every setting is in its table."""

import re

from tests.support import ROOT

README = (ROOT / "README.md").read_text()


def commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", README)


def test_readme_opens_with_start_and_test_commands():
    start, test = commands()[:2]
    assert "gunicorn -c gunicorn.conf.py app:app" in start
    assert "pytest" in test


def test_ci_runs_the_readme_test_command_exactly():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands()[1] in ci_lines


def test_every_setting_is_documented_in_the_table_and_the_example():
    modules = (
        "flux_api/config/environment.py",
        "flux_api/config/settings.py",
        "flux_api/config/server.py",
        "flux_api/mcp/settings.py",
        "gunicorn.conf.py",
    )
    code = "".join((ROOT / module).read_text() for module in modules)
    names = set(
        re.findall(r'["\']([A-Z][A-Z0-9_]{2,})["\']', code)
    )  # every variable is read by name
    names -= {"PYTHONPATH", "FLUX_API_RUNNING_BIND"}  # passed to the reload check, not settings
    assert {"API_KEY", "CF_API_BASE", "UPSTREAM_TIMEOUT", "PORT", "WEB_CONCURRENCY"} <= names
    table = "\n".join(line for line in README.splitlines() if line.startswith("| `"))
    example = (ROOT / ".env.example").read_text()
    for name in names:
        assert f"`{name}`" in table, name
        assert name in example, name
