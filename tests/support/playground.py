"""The playground page as a person uses it, through Playwright."""

from tests.support.service import API_KEY


def save_key(page, key: str = API_KEY) -> None:
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Key saved in this browser").wait_for()
