"""Headless Chromium (Debian's `chromium` and `chromium-driver`, driven by
selenium), for the tests that check what a person sees on a page."""

from __future__ import annotations

import shutil
from contextlib import contextmanager

from selenium import webdriver


@contextmanager
def chromium():
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "apt-get install chromium chromium-driver (make test does)"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1600"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver),
                               options=options)
    try:
        yield browser
    finally:
        browser.quit()
