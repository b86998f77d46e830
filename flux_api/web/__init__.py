"""The HTTP edge: views, request context, auth, errors to HTTP, pages, image files."""
