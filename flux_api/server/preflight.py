"""`python -m flux_api.server.preflight`: would a new worker start with the code and settings
on disk now? It reads .env and the environment and builds the app exactly as a worker does; on
failure it prints one line and exits non-zero.

gunicorn's master runs it before each reload (SIGHUP, `systemctl reload`): a bad setting or code
that does not import then refuses the reload, and the running workers keep serving, instead of
new workers failing to boot and taking the master down with them.
"""

import os

from flux_api import create_app_or_exit
from flux_api.config.environment import SettingsError, exit_cannot_start
from flux_api.config.server import check_can_listen, load_server_config_or_exit


def main() -> None:
    config = load_server_config_or_exit()
    running = os.environ.get("FLUX_API_RUNNING_BIND", "").split(",")
    if config.bind not in running:  # a new address: it must be free to take
        try:
            check_can_listen(config.bind)
        except SettingsError as exc:
            exit_cannot_start(exc)
    create_app_or_exit().extensions["flux_api"].store.close()


if __name__ == "__main__":
    main()
