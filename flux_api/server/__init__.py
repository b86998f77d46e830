"""The gunicorn worker, its client sockets, and the start-up preflight."""
