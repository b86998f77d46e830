"""The playground page as a person uses it, through Playwright."""

import time

from tests.support.service import API_KEY


def save_key(page, key: str = API_KEY) -> None:
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Key saved in this browser").wait_for()


def wait_until(page, expression: str, timeout: float = 15.0) -> None:
    """Wait until `expression` (JavaScript, or a function of none) is true in the page.

    Not Playwright's wait_for_function: when its first check is false, it polls inside the page
    with eval(), which the page's CSP (no 'unsafe-eval') refuses, so it fails exactly when the
    page is slow. page.evaluate runs through the debugger protocol, which the CSP allows."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout:g} s: {expression}")
        page.wait_for_timeout(50)
