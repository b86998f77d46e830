"""`python -m flux_api.preflight`: would a new worker start with the code and settings on disk
now? It reads .env and the environment and builds the app exactly as a worker does; on failure
it prints one line and exits non-zero.

gunicorn's master runs it before each reload (SIGHUP, `systemctl reload`): a bad setting or code
that does not import then refuses the reload, and the running workers keep serving, instead of
new workers failing to boot and taking the master down with them.
"""

from flux_api import create_app_or_exit
from flux_api.server_config import load_server_config_or_exit


def main() -> None:
    load_server_config_or_exit()
    create_app_or_exit().extensions["flux_api"].store.close()


if __name__ == "__main__":
    main()
