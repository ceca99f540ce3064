"""Driving the demo page as a person does, in headless Chromium (Selenium): for tests/test_demo.py and the
README's screenshot (examples/demo_screenshot.py).

Needs Debian's `chromium` and `chromium-driver` (`apt-get install -y chromium chromium-driver`) and the
`selenium` package; `chromium_problem()` says what is missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)


def _first(names) -> str | None:
    return next((path for path in map(shutil.which, names) if path), None)


def chromium_problem() -> str | None:
    """Why headless Chromium cannot be driven here, or None when it can."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[test]')"
    if _first(BROWSERS) is None or _first(DRIVERS) is None:
        return "Chromium is not installed (apt-get install -y chromium chromium-driver; .ci/run does it)"
    return None


@contextlib.contextmanager
def chromium(width: int = 1100, height: int = 1500):
    """A headless Chromium WebDriver of a fixed window size, quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _first(BROWSERS)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--autoplay-policy=no-user-gesture-required", f"--window-size={width},{height}"):
        options.add_argument(flag)  # no sandbox: CI runs as root, where Chromium's sandbox refuses to start
    driver = webdriver.Chrome(options=options, service=Service(_first(DRIVERS)))
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition, timeout: float, what: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)
    except TimeoutException:
        raise TimeoutError(f"waited {timeout:g} s for {what}; errors on the page: {errors(driver) or 'none'}") from None


def open_page(driver, url: str, timeout: float = 60) -> None:
    """Load the demo and wait until its first tab's prompt box is there."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#t2v-prompt textarea"), timeout, "the page")


def generate(driver, prompt: str, tab: str = "t2v") -> None:
    """Type `prompt` into a tab's prompt box (replacing what is there) and click its Generate button."""
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.CSS_SELECTOR, f"#{tab}-prompt textarea")
    box.clear()
    box.send_keys(prompt)
    driver.find_element(By.ID, f"{tab}-generate").click()


def video_duration(driver, tab: str = "t2v", timeout: float = 120, previous: str | None = None) -> tuple[str, float]:
    """Wait for the tab's clip (a <video> with another source than `previous`) to load its metadata; return
    (its source URL, the duration in seconds the browser reports)."""
    script = (f"const v = document.querySelector('#{tab}-video video');"
              "return v && v.currentSrc && v.readyState >= 1 ? [v.currentSrc, v.duration] : null;")
    found = _wait(driver, lambda d: (r := d.execute_script(script)) and r[0] != previous and r, timeout,
                  "the clip to play")
    return found[0], float(found[1])


def errors(driver) -> list[str]:
    """The text of the error messages the page shows (Gradio's error toasts)."""
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".toast-body.error") if e.text.strip()]


def wait_for_error(driver, timeout: float = 30) -> str:
    """The first error message the page shows, once it shows one."""
    return _wait(driver, lambda d: " ".join(errors(d)), timeout, "an error message")
