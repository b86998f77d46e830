"""Real HTTP servers standing in for the upstreams, which the tests cannot reach."""
