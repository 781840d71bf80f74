"""The browser page at `/`, end to end in headless Chromium (Debian's `chromium`
and `chromium-driver`, driven by selenium) against real gunicorn, Redis and the
worker: upload an image and see five labelled bars; a bad file shows its error
in words."""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.browser import chromium
from tests.support.images import jpeg

pytestmark = [pytest.mark.browser, pytest.mark.processes]


@pytest.fixture(scope="module")
def server(http_service):
    return http_service


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def _card_for(browser, name):
    for card in browser.find_elements(By.CSS_SELECTOR, "article.job"):
        if card.find_element(By.CSS_SELECTOR, ".name").text == name:
            return card
    return None


def _finished(browser, name):
    card = _card_for(browser, name)
    if card is not None and card.get_attribute("data-status") in ("succeeded", "failed"):
        return card
    return None


def test_upload_an_image_and_see_the_bars(server, browser, tmp_path):
    image = tmp_path / "cat.jpg"
    image.write_bytes(jpeg(320, 240, "chelsea"))
    browser.get(server + "/")
    assert browser.title.startswith("resq")
    browser.find_element(By.ID, "files").send_keys(str(image))
    card = WebDriverWait(browser, 60).until(lambda b: _finished(b, "cat.jpg"))
    assert card.get_attribute("data-status") == "succeeded"
    bars = card.find_elements(By.CSS_SELECTOR, ".bar")
    assert len(bars) == 5
    labels = [bar.find_element(By.CSS_SELECTOR, ".label").text for bar in bars]
    scores = [float(bar.find_element(By.CSS_SELECTOR, ".score").text.rstrip("%")) for bar in bars]
    assert all(labels) and scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 100.1
    # Each bar is drawn as wide as its score: measured as rendered, in pixels.
    for bar, score in zip(bars, scores, strict=True):
        fill = bar.find_element(By.CSS_SELECTOR, ".fill").rect["width"]
        track = bar.find_element(By.CSS_SELECTOR, ".track").rect["width"]
        assert track > 100 and fill / track * 100 == pytest.approx(score, abs=0.5)
    browser.save_screenshot(str(tmp_path / "page.png"))


def test_a_bad_file_shows_its_error_in_words(server, browser, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    browser.get(server + "/")
    browser.find_element(By.ID, "files").send_keys(str(bad))
    card = WebDriverWait(browser, 30).until(lambda b: _finished(b, "notes.png"))
    status = card.find_element(By.CSS_SELECTOR, ".status").text
    assert card.get_attribute("data-status") == "failed"
    assert "not an image" in status and "unsupported_image_format" in status
    assert card.find_elements(By.CSS_SELECTOR, ".bar") == []
