"""How long each stage of one generation took, and the event that reports it."""

from __future__ import annotations

import time

from flux_api.budget import ClientLeft
from flux_api.events import GenerationDone

_STAGES = ("optimizer", "upstream", "store")


class StageClock:
    """Marks the end of each stage (optimizer, upstream, store) of one generation; a stage
    never reached counts as 0 s."""

    def __init__(self, first_try: int = 0) -> None:
        self.started = time.monotonic()
        self.first_try = first_try  # the budget's tries before this generation's
        self._ends: dict[str, float] = {}
        self.reported = False

    def mark(self, stage: str) -> float:
        """Mark `stage` as ended now; return how long it took."""
        now = time.monotonic()
        self._ends[stage] = now
        return now - self._previous_end(stage)

    def _previous_end(self, stage: str) -> float:
        earlier = _STAGES[: _STAGES.index(stage)]
        return max((self._ends[s] for s in earlier if s in self._ends), default=self.started)

    def seconds(self, stage: str) -> float:
        end = self._ends.get(stage)
        return 0.0 if end is None else end - self._previous_end(stage)

    def report(
        self,
        model: str,
        size: tuple[int, int],
        count: int,
        error: BaseException | None,
        tries: tuple = (),
    ) -> GenerationDone:
        """The generation's event (once: `reported` is set)."""
        self.reported = True
        if error is None:
            outcome = "ok"
        elif isinstance(error, (ClientLeft, GeneratorExit)):  # GeneratorExit: a stream closed
            outcome = "client_left"
        else:
            outcome = "failed"
        return GenerationDone(
            model=model,
            size=size,
            count=count,
            outcome=outcome,
            error=None if error is None else type(error).__name__,
            optimizer_seconds=self.seconds("optimizer"),
            upstream_seconds=self.seconds("upstream"),
            store_seconds=self.seconds("store"),
            total_seconds=time.monotonic() - self.started,
            tries=tries,
        )
