"""Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by Selenium, for page tests."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

CHROMEDRIVER = Path("/usr/bin/chromedriver")


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[test]')"
    if shutil.which("chromium") is None or not CHROMEDRIVER.is_file():
        return "Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
    return None


def headless_chromium(downloads: Path | None = None, size: tuple[int, int] = (1200, 900)):
    """A headless Chromium through the system's chromedriver (never a downloaded one), with its
    console log readable and downloads going to ``downloads`` without asking."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={size[0]},{size[1]}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if downloads is not None:
        options.add_experimental_option(
            "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
        )
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
