"""Optional JSON body fields: absent or null means unset; a wrong type is a 400 naming it."""

from __future__ import annotations

from flux_api.errors import invalid_request


def optional(body: dict, name: str, kind: type | tuple[type, ...], what: str):
    """The field's value, or None; `what` says what it must be ("a string")."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise invalid_request(f"`{name}` must be {what}.", param=name)
    return value


def whole_number(body: dict, name: str, minimum: int, maximum: int | None = None) -> int | None:
    """An integer field within bounds. 3.0 counts as 3, as it does in JSON Schema."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise invalid_request(f"`{name}` must be a whole number {bounds}.", param=name)
    return value
