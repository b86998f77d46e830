"""Settings read once at start-up: the environment, the model catalogue, accounts."""
