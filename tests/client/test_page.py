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


def _batch_done(browser):
    for card in browser.find_elements(By.CSS_SELECTOR, "article.batch"):
        rows = card.find_elements(By.CSS_SELECTOR, "tbody tr")
        if card.get_attribute("data-status") == "succeeded" and len(rows) == 3:
            return card
    return None


def test_many_images_become_a_batch_with_a_progress_bar_and_a_results_table(server, browser,
                                                                            tmp_path):
    paths = []
    for name, photo in (("cat.jpg", "chelsea"), ("rocket.jpg", "rocket")):
        path = tmp_path / name
        path.write_bytes(jpeg(320, 240, photo))
        paths.append(path)
    broken = tmp_path / "broken.jpg"
    whole = jpeg(640, 480)
    broken.write_bytes(whole[: len(whole) // 3])  # its header passes; decoding fails
    paths.append(broken)
    browser.get(server + "/")
    browser.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in paths))
    card = WebDriverWait(browser, 90).until(_batch_done)
    assert card.find_element(By.CSS_SELECTOR, ".name").text == "batch (3 images)"
    progress = card.find_element(By.CSS_SELECTOR, ".progress")
    assert progress.get_attribute("value") == progress.get_attribute("max") == "3"
    assert progress.rect["width"] > 300  # drawn across the page, full
    summary = card.find_element(By.CSS_SELECTOR, ".summary").text
    assert summary.startswith("3 of 3 done") and "1 failed" in summary
    rows = {row.find_elements(By.TAG_NAME, "td")[1].text:
            [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in card.find_elements(By.CSS_SELECTOR, "tbody tr")}
    assert set(rows) == {"cat.jpg", "rocket.jpg", "broken.jpg"}
    assert rows["cat.jpg"][2] == "succeeded" and rows["cat.jpg"][4].endswith("%")
    assert rows["broken.jpg"][2] == "failed" and "bad_image" in rows["broken.jpg"][3]
    assert _card_for(browser, "cat.jpg") is None  # a batch, not three jobs
    browser.save_screenshot(str(tmp_path / "batch.png"))
