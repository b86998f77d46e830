"""Admission's counter and its WSGI layer: slots are counted exactly under threads, and always
given back (the app raises, the server closes a stream its client left, the body ends); a leak
would shed for ever. The real gunicorn and fakes: tests/system/test_admission.py."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from flux_api.config.api_keys import ApiKey
from flux_api.events import Events, GenerationsInFlight, Shed
from flux_api.observe import log_lines
from flux_api.web.admission import (
    QUEUED_AT,
    Admission,
    GenerationSlots,
    keep_slot,
    key_limit,
)
from flux_api.web.image_files import cors_headers

ALICE, BOB = ApiKey("alice", "sk-alice-0123456789abcdef"), ApiKey("bob", "sk-bob-0123456789abcdef")


def test_slots_admit_up_to_capacity_then_shed_for_capacity():
    slots = GenerationSlots(capacity=2, key_limit=2)
    assert slots.take("alice") == (None, 1)
    assert slots.take("bob") == (None, 2)
    assert slots.take("carol") == ("capacity", 2)
    slots.release("alice")
    assert slots.take("carol") == (None, 2)


def test_a_key_beyond_its_share_is_shed_while_another_is_admitted():
    slots = GenerationSlots(capacity=4, key_limit=2)
    assert [slots.take("alice")[0] for _ in range(3)] == [None, None, "key_share"]
    assert slots.take("bob") == (None, 3)


def test_key_limit_applies_only_with_several_keys():
    assert key_limit(4, 0.5, keys=1) == 4
    assert key_limit(4, 0.5, keys=2) == 2
    assert key_limit(3, 0.1, keys=3) == 1  # never zero: every key may run one


def test_a_release_without_a_take_does_not_go_below_zero():
    slots = GenerationSlots(capacity=1, key_limit=1)
    slots.release("alice")
    assert slots.in_flight == 0
    assert slots.take("alice") == (None, 1)
    assert slots.take("alice") == ("capacity", 1)


def churn(slots: GenerationSlots, rounds: int, threads: int = 8) -> int:
    """`threads` threads at once each take and give back a slot `rounds` times; how many
    takes were admitted."""
    admitted = []
    start = threading.Barrier(threads)

    def run():
        start.wait()
        for _ in range(rounds):
            if slots.take("alice")[0] is None:
                admitted.append(1)
                slots.release("alice")

    running = [threading.Thread(target=run) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return len(admitted)


def test_the_counts_told_arrive_in_order_under_many_threads():
    """Told under the lock: each differs from the one before by one, and the last is the true
    count (a gauge set out of order would stay wrong once the burst is over)."""
    told: list[int] = []
    slots = GenerationSlots(capacity=8, key_limit=8, changed=told.append)
    churn(slots, rounds=500)
    assert told[-1] == slots.in_flight == 0
    assert all(abs(now - before) == 1 for before, now in zip([0, *told], told))


def test_slots_count_exactly_under_many_threads():
    slots = GenerationSlots(capacity=50, key_limit=50)
    admitted = churn(slots, rounds=2000)
    assert slots.in_flight == 0 and slots.held_by("alice") == 0
    assert admitted > 0


class Recorded:
    """The events announced, and a WSGI app whose behaviour each test sets."""

    def __init__(self):
        self.events: list = []
        self.hub = Events()
        self.hub.subscribe(self.events.append)

    def of(self, kind) -> list:
        return [event for event in self.events if isinstance(event, kind)]


def call(
    middleware,
    key: ApiKey | None = ALICE,
    path="/v1/chat/completions",
    method="POST",
    queued_at: float | None = None,
):
    """The WSGI call as a server makes it: (status, headers, body iterable). `queued_at`: when
    the server handed the request to its threads, as our worker puts it in the environ."""
    answer: dict = {}

    def start_response(status, headers, exc_info=None):
        answer["status"], answer["headers"] = status, dict(headers)

    environ: dict = {"REQUEST_METHOD": method, "PATH_INFO": path}
    if queued_at is not None:
        environ[QUEUED_AT] = queued_at
    if key is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {key.secret}"
    body = middleware(environ, start_response)
    return answer, body


def ok_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b"{}"]


def admission(app, capacity=1, limit=1, keys=(ALICE, BOB), wait_limit=0.0):
    recorded = Recorded()
    slots = GenerationSlots(
        capacity, limit, lambda n: recorded.hub.announce(GenerationsInFlight(n, capacity))
    )
    middleware = Admission(app, slots, keys, recorded.hub, ("*",), wait_limit)
    return middleware, slots, recorded


def test_the_request_over_capacity_gets_a_503_that_says_to_retry_and_never_reaches_the_app():
    reached = []

    def app(environ, start_response):
        reached.append(environ["PATH_INFO"])
        return ok_app(environ, start_response)

    middleware, slots, recorded = admission(app)
    _, held = call(middleware)
    answer, body = call(middleware, BOB, "/v1/images/generations")
    assert reached == ["/v1/chat/completions"]
    assert answer["status"].startswith("503")
    assert answer["headers"]["x-should-retry"] == "true"
    assert 2 <= int(answer["headers"]["Retry-After"]) <= 5
    error = json.loads(b"".join(body))["error"]
    assert error["code"] == "overloaded" and "retry after" in error["message"]
    body.close()
    assert recorded.of(Shed) == [
        Shed("capacity", "bob", 1, 1, int(answer["headers"]["Retry-After"]))
    ]
    held.close()
    assert slots.in_flight == 0


def test_a_generation_that_waited_too_long_for_a_thread_is_shed_with_a_free_slot():
    reached = []

    def app(environ, start_response):
        reached.append(environ.get(QUEUED_AT))
        return ok_app(environ, start_response)

    middleware, slots, recorded = admission(app, capacity=4, limit=4, wait_limit=0.5)
    answer, body = call(middleware, queued_at=time.monotonic() - 0.6)
    assert answer["status"].startswith("503") and not reached and slots.in_flight == 0
    error = json.loads(b"".join(body))["error"]
    assert error["code"] == "overloaded"
    assert "waited more than 0.5 s for a thread (ADMISSION_WAIT)" in error["message"]
    assert "Nothing was started or billed" in error["message"]
    body.close()
    assert [shed.reason for shed in recorded.of(Shed)] == ["waited"]

    fresh = time.monotonic() - 0.1
    answer, body = call(middleware, queued_at=fresh)  # a short wait is admitted
    assert answer["status"] == "200 OK" and reached == [fresh] and slots.in_flight == 1
    body.close()
    answer, body = call(middleware)  # another server (no moment given): admitted
    assert answer["status"] == "200 OK"
    body.close()
    # Not a generation: never shed for waiting (health checks, image fetches answer late).
    answer, _ = call(middleware, path="/v1/models", method="GET", queued_at=0.0)
    assert answer["status"] == "200 OK"


def test_no_wait_is_too_long_with_admission_wait_off():
    middleware, _, _ = admission(ok_app, wait_limit=0.0)
    answer, body = call(middleware, queued_at=time.monotonic() - 60)
    assert answer["status"] == "200 OK"
    body.close()


def test_other_requests_and_unknown_keys_pass_without_a_slot():
    middleware, slots, _ = admission(ok_app, capacity=1)
    call(middleware)  # holds the only slot (never closed)
    for method, path, key in (
        ("GET", "/healthz", None),
        ("GET", "/v1/models", ALICE),
        ("POST", "/v1/chat/completions", None),  # Flask answers its 401
        ("POST", "/v1/chat/completions", ApiKey("eve", "sk-not-a-configured-key-000")),
    ):
        answer, _ = call(middleware, key, path, method)
        assert answer["status"] == "200 OK", (method, path)
    assert slots.in_flight == 1


def test_an_app_that_raises_gives_its_slot_back():
    def broken(environ, start_response):
        raise RuntimeError("a bug")

    middleware, slots, recorded = admission(broken)
    with pytest.raises(RuntimeError):
        call(middleware)
    assert slots.in_flight == 0
    assert [event.in_flight for event in recorded.of(GenerationsInFlight)] == [1, 0]


def test_a_stream_whose_client_leaves_mid_way_gives_its_slot_back():
    closed = []

    def stream(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/event-stream")])

        def frames():
            try:
                while True:
                    yield b"data: {}\n\n"
            finally:
                closed.append(True)

        return frames()

    middleware, slots, _ = admission(stream)
    _, body = call(middleware)
    frames = iter(body)
    next(frames), next(frames)  # the client reads two frames, then the server's write fails
    assert slots.in_flight == 1
    body.close()  # what gunicorn does whatever ended the response
    assert closed == [True] and slots.in_flight == 0
    body.close()  # a second close gives nothing back twice
    assert slots.in_flight == 0
    assert call(middleware)[0]["status"] == "200 OK"


def test_a_body_whose_close_fails_still_gives_its_slot_back():
    class Failing:
        def __iter__(self):
            return iter([b"{}"])

        def close(self):
            raise OSError("gone")

    def app(environ, start_response):
        start_response("200 OK", [])
        return Failing()

    middleware, slots, _ = admission(app)
    _, body = call(middleware)
    with pytest.raises(OSError):
        body.close()
    assert slots.in_flight == 0


def test_a_bursts_tail_of_sheds_is_told_at_the_next_admitted_generation(caplog):
    """Sheds counted into the next shed line are not held until the next burst."""
    caplog.set_level(logging.WARNING, "flux_api")
    hub = Events()
    log_lines.subscribe(hub)
    for _ in range(3):  # one line at once, two counted for the next
        hub.announce(Shed("capacity", "alice", 1, 1, 3))
    hub.announce(GenerationsInFlight(0, 1))  # within the line interval: not yet
    assert len(caplog.records) == 1
    log_lines._shed_lines._next = 0.0  # the interval has passed
    hub.announce(GenerationsInFlight(1, 1))
    assert "shed also_shed=2 (since the last shed line)" in caplog.text


def test_a_browser_may_read_retry_after_on_answers_made_before_flask():
    exposed = dict(cors_headers("https://app.example", frozenset({"https://app.example"})))
    assert "Retry-After" in exposed["Access-Control-Expose-Headers"]


def test_work_kept_for_a_stream_holds_its_slot_after_the_client_has_left():
    """A stream's generation goes on after its client hangs up until its Workers AI call
    returns: the slot counts it until then, so clients that leave at once cannot run more
    calls than the worker holds."""
    kept = []

    def stream(environ, start_response):
        kept.append(keep_slot(environ))  # as the chat view does for the generation
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return [b"data: {}\n\n"]

    middleware, slots, _ = admission(stream)
    _, body = call(middleware)
    body.close()  # the client left
    assert slots.in_flight == 1
    answer, _ = call(middleware)
    assert answer["status"].startswith("503")  # still full
    (generation_done,) = kept
    generation_done()
    assert slots.in_flight == 0
    generation_done()  # once counts
    assert slots.in_flight == 0


def test_a_generation_that_ends_before_its_response_is_closed_leaves_the_slot_to_it():
    generation_done = []

    def stream(environ, start_response):
        done = keep_slot(environ)
        done()  # e.g. a failure reported in-band, the frames not yet sent
        generation_done.append(done)
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return [b"data: {}\n\n"]

    middleware, slots, _ = admission(stream)
    _, body = call(middleware)
    assert slots.in_flight == 1
    body.close()
    assert slots.in_flight == 0


def test_a_slot_kept_too_late_is_not_given_back_twice():
    """keep_slot called after the response was closed (no path does today) must not release
    the slot a second time, which would free another request's."""
    environs = []

    def app(environ, start_response):
        environs.append(environ)
        return ok_app(environ, start_response)

    middleware, slots, _ = admission(app, capacity=2, limit=2)
    _, first = call(middleware)
    first.close()
    _, second = call(middleware)  # holds a slot
    late = keep_slot(environs[0])
    late()
    assert slots.in_flight == 1
    second.close()
    assert slots.in_flight == 0
