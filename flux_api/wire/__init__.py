"""OpenAI's shapes in and out: chat, images, edits, their fields, SSE frames."""
