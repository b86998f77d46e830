"""Clients of the upstreams: Workers AI, the prompt optimizer, deadlines."""
