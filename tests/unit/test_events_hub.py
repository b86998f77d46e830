"""The event hub: subscribers hear every event in order; one that raises is logged once and
never stops the others (the events themselves: tests/system/test_events.py)."""

from __future__ import annotations

import logging

from flux_api.events import Events, UpstreamCall


def test_subscribers_hear_each_event_in_order_and_a_broken_one_is_logged_once(caplog):
    events, heard = Events(), []

    def broken(event):
        raise RuntimeError("a bug in a subscriber")

    events.subscribe(lambda event: heard.append(("first", event)))
    events.subscribe(broken)
    events.subscribe(lambda event: heard.append(("last", event)))
    call = UpstreamCall("abc123…wxyz", "flux-1-schnell", "ok", 1.5, 0.2)
    with caplog.at_level(logging.ERROR, logger="flux_api.events"):
        events.announce(call)
        events.announce(call)
    assert heard == [("first", call), ("last", call)] * 2
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        f"event subscriber {broken!r} failed"
    ]
