"""Cloudflare Workers AI: the client, request fields, answers, errors."""
