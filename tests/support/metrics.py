"""GET /metrics read back: one exposition parsed by prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

PREFIX = "flux_api_"


class Scrape:
    """Called with a sample's name (without flux_api_) and its labels: its value, or None."""

    def __init__(self, text: str):
        self.text = text
        self.samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def __call__(self, name: str, **labels) -> float | None:
        return self.samples.get((PREFIX + name, tuple(sorted(labels.items()))))

    def labels_of(self, name: str) -> dict:
        """{labels: value} of every sample of `name` (labels as sorted (name, value) pairs)."""
        return {
            labels: value
            for (sample, labels), value in self.samples.items()
            if sample == PREFIX + name
        }

    def sum(self, name: str, **labels) -> float:
        """The sum of `name`'s samples that carry `labels` (and any others)."""
        wanted = set(labels.items())
        return sum(value for found, value in self.labels_of(name).items() if wanted <= set(found))

    def counts(self, leave_out_endpoints: tuple[str, ...] = ()) -> dict:
        """Every counter total and histogram count that is not 0, but the requests to
        `leave_out_endpoints` (the scrapes themselves, the test harness's own)."""
        return {
            (name, labels): value
            for (name, labels), value in self.samples.items()
            if name.endswith(("_total", "_count"))
            and value
            and not (
                name == PREFIX + "requests_total"
                and dict(labels)["endpoint"] in leave_out_endpoints
            )
        }
