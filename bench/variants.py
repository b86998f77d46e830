"""The app with parts of this turn's bookkeeping switched off, for measuring what they cost
(`python bench/run.py --usage-off`). Bench only: the service has no setting for it.

    gunicorn -c gunicorn.conf.py 'bench.variants:without_usage()'

drops the usage ledger's and the metrics' subscriptions to the events, so a generation's
events reach only the log lines (the account pool still records what it records).
"""

from __future__ import annotations

from flux_api.events import Events
from flux_api.observe.ledger import Ledger
from flux_api.observe.metrics import Metrics


def without_usage():
    subscribe = Events.subscribe

    def only_the_rest(self, subscriber):
        if isinstance(subscriber, Ledger) or isinstance(
            getattr(subscriber, "__self__", None), Metrics
        ):
            return
        subscribe(self, subscriber)

    Events.subscribe = only_the_rest  # in this worker process only
    from flux_api import create_app_or_exit

    return create_app_or_exit(check_connections=False)
