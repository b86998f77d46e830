"""gunicorn's settings come from the same .env and environment as the app's, checked the same
way, and its timeouts follow the service's own deadline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from tests.support import ROOT
from tests.support.programs import free_port
from tests.support.redis_server import RedisServer

GUNICORN_SETTINGS = {
    # variable in .env: (value, gunicorn's setting, as --print-config shows it)
    "BIND": ("127.0.0.1:9123", "bind", "['127.0.0.1:9123']"),
    "WEB_CONCURRENCY": ("3", "workers", "3"),
    "GUNICORN_THREADS": ("7", "threads", "7"),
    "GUNICORN_TIMEOUT": ("200", "timeout", "200"),
    "GUNICORN_GRACEFUL_TIMEOUT": ("77", "graceful_timeout", "77"),
    "LOG_LEVEL": ("debug", "loglevel", "debug"),
    "GUNICORN_ACCESS_LOG": ("-", "accesslog", "-"),
    "FORWARDED_ALLOW_IPS": ("10.0.0.1", "forwarded_allow_ips", "['10.0.0.1']"),
}


def gunicorn_in(workdir, dotenv: str, *args: str, environ: dict | None = None):
    """gunicorn with the shipped gunicorn.conf.py, started in `workdir` holding `dotenv` as
    .env, and nothing of the test's own environment."""
    (workdir / ".env").write_text(dotenv)
    env = {"PATH": os.environ.get("PATH", ""), **(environ or {})}
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), *args, "app:app"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def printed_config(output: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+)\s+= (.*)$", output, re.M))


@pytest.mark.parametrize("variable", GUNICORN_SETTINGS)
def test_each_gunicorn_setting_works_from_dotenv_alone(tmp_path, variable):
    value, name, shown = GUNICORN_SETTINGS[variable]
    result = gunicorn_in(tmp_path, f"{variable}={value}\n", "--print-config")
    assert result.returncode == 0, result.stderr
    assert printed_config(result.stdout)[name] == shown


def test_the_process_environment_wins_over_dotenv(tmp_path):
    result = gunicorn_in(
        tmp_path, "WEB_CONCURRENCY=3\n", "--print-config", environ={"WEB_CONCURRENCY": "2"}
    )
    assert printed_config(result.stdout)["workers"] == "2"


def test_bind_defaults_to_loopback(tmp_path):
    result = gunicorn_in(tmp_path, "PORT=8123\n", "--print-config")
    assert printed_config(result.stdout)["bind"] == "['127.0.0.1:8123']"


@pytest.mark.parametrize(
    "dotenv, named",
    [
        ("WEB_CONCURRENCY=abc\n", "WEB_CONCURRENCY must be a number, not 'abc'"),
        ("GUNICORN_THREADS=0\n", "GUNICORN_THREADS must be at least 1"),
        ("LOG_LEVEL=loud\n", "LOG_LEVEL must be one of"),
        ("PORT=http\n", "PORT needs a port from 1 to 65535"),
        ("PORT=99999\n", "PORT needs a port from 1 to 65535"),
        ("BIND=127.0.0.1:99999\n", "BIND needs a port"),
        ("BIND=notaport\n", "BIND must look like"),
        ("FORWARDED_ALLOW_IPS=bogus!\n", "FORWARDED_ALLOW_IPS lists 'bogus!'"),
        ("GUNICORN_ACCESS_LOG=/nonexistent/dir/a.log\n", "GUNICORN_ACCESS_LOG"),
        ("CORS_ORIGINS=example.com\n", "CORS_ORIGINS lists 'example.com'"),
        ("API_KEY=alice:sk-too-short\n", "API_KEY entry 1: the key after the name is 12"),
        (
            "API_KEY=a:sk-long-enough-key-0001,a:sk-long-enough-key-0002\n",
            "API_KEY entries 1 and 2 have the same name",
        ),
    ],
)
def test_a_bad_gunicorn_setting_is_one_line_naming_it(tmp_path, dotenv, named):
    result = gunicorn_in(tmp_path, dotenv)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "sk-" not in result.stderr + result.stdout  # no key, not even a short one


@pytest.mark.parametrize(
    "dotenv, graceful",
    [
        ("", 130),  # UPSTREAM_TIMEOUT 120 + 10
        ("UPSTREAM_TIMEOUT=60\n", 70),
        (
            "UPSTREAM_TIMEOUT=60\nOPTIMIZER_TIMEOUT=20\nPROMPT_OPTIMIZATION=true\n"
            "EXTERNAL_API_BASE=http://127.0.0.1:9\nEXTERNAL_MODEL=m\n",
            90,
        ),
    ],
)
def test_graceful_timeout_covers_the_longest_request(tmp_path, dotenv, graceful):
    """A restart never cuts a generation the service would still wait for."""
    config = printed_config(gunicorn_in(tmp_path, dotenv, "--print-config").stdout)
    assert int(config["graceful_timeout"]) == graceful
    assert int(config["timeout"]) >= graceful


EXAMPLE = ROOT / ".env.example"
UNIT = ROOT / "deploy" / "systemd" / "flux-api.service"


def uncommented_example() -> str:
    """.env.example with every `# NAME=value` line uncommented (prose comments stay)."""
    lines = EXAMPLE.read_text().splitlines()
    return "\n".join(re.sub(r"^# ([A-Z_]+=)", r"\1", line) for line in lines) + "\n"


def unit_environment() -> dict[str, str]:
    return dict(re.findall(r"^Environment=([A-Z_]+)=(.*)$", UNIT.read_text(), re.M))


@pytest.fixture
def example(tmp_path):
    """The example uncommented, its REDIS_URL pointing at a real Redis on a loopback port with
    the example's password."""
    text = uncommented_example()
    assert text.count("\n# ") < EXAMPLE.read_text().count("\n# ")  # something was uncommented
    example_url = re.search(r"^REDIS_URL=(redis://:(\w+)@[\d.]+:\d+/0)$", text, re.M)
    redis_server = RedisServer(tmp_path / "redis", free_port(), example_url.group(2)).start()
    text = text.replace(example_url.group(1), redis_server.url)
    assert "\nAPI_KEY=\n" in text
    yield text.replace("\nAPI_KEY=\n", "\nAPI_KEY=sk-example-key\n")  # REDIS_URL requires it
    redis_server.stop()


def test_every_commented_line_of_the_example_is_valid_uncommented(tmp_path, example):
    result = gunicorn_in(tmp_path, example, "--print-config")
    assert result.returncode == 0, result.stderr
    assert "cannot start" not in result.stderr


def test_the_unit_with_the_example_uncommented_keeps_loopback_and_its_state_directory(
    tmp_path, example
):
    """Under systemd the unit's own settings win over the file, and the start says so."""
    settings_file = tmp_path / "flux-api.env"
    settings_file.write_text(example.replace("BIND=127.0.0.1", "BIND=0.0.0.0"))
    environ = {**unit_environment(), "FLUX_API_ENV_FILE": str(settings_file)}
    assert environ["DATA_DIR"] == "/var/lib/flux-api"
    # --print-config builds the app, which creates the store: never in the real state directory.
    environ["DATA_DIR"] = str(tmp_path / "state")
    result = gunicorn_in(tmp_path, "", "--print-config", environ=environ)
    assert result.returncode == 0, result.stderr
    assert printed_config(result.stdout)["bind"] == "['127.0.0.1:8000']"
    overridden = [line for line in result.stderr.splitlines() if "is overridden" in line]
    assert {line.split()[1] for line in overridden} == {"BIND", "DATA_DIR"}


def test_settings_file_is_read_again_on_reload_not_only_at_start(tmp_path):
    """FLUX_API_ENV_FILE is read by the service itself (systemd's EnvironmentFile= would be
    read once): a second read sees the edit."""
    settings_file = tmp_path / "flux-api.env"
    settings_file.write_text("WEB_CONCURRENCY=2\n")
    environ = {"FLUX_API_ENV_FILE": str(settings_file)}
    first = printed_config(gunicorn_in(tmp_path, "", "--print-config", environ=environ).stdout)
    settings_file.write_text("WEB_CONCURRENCY=3\n")
    second = printed_config(gunicorn_in(tmp_path, "", "--print-config", environ=environ).stdout)
    assert (first["workers"], second["workers"]) == ("2", "3")


@pytest.mark.parametrize(
    "prepare, named",
    [
        (lambda path: None, "does not exist"),
        (lambda path: path.write_bytes(b"API_KEY=\xff\xfe\n"), "cannot be read"),
    ],
)
def test_an_unusable_settings_file_is_one_line(tmp_path, prepare, named):
    settings_file = tmp_path / "missing.env"
    prepare(settings_file)
    result = gunicorn_in(tmp_path, "", environ={"FLUX_API_ENV_FILE": str(settings_file)})
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1 and named in lines[0], result.stderr


def test_missing_cloudflare_settings_are_one_warning_at_start(gunicorn, tmp_path):
    server = gunicorn({"DATA_DIR": str(tmp_path / "data")}, workers=2)
    time.sleep(0.5)
    warnings = [line for line in server.log.splitlines() if "not set: the service runs" in line]
    assert len(warnings) == 1 and "CF_ACCOUNT_ID and CF_API_TOKEN" in warnings[0]
    created = [line for line in server.log.splitlines() if "created a key in" in line]
    assert len(created) == 1 and str(tmp_path / "data" / "api_key") in created[0]
    key = (tmp_path / "data" / "api_key").read_text().strip()
    assert key not in server.log


def test_a_graceful_timeout_below_the_longest_request_is_one_warning(tmp_path):
    result = gunicorn_in(tmp_path, "GUNICORN_GRACEFUL_TIMEOUT=30\n", "--print-config")
    assert result.returncode == 0
    warnings = [line for line in result.stderr.splitlines() if "GRACEFUL" in line]
    assert len(warnings) == 1 and "120 s" in warnings[0]
