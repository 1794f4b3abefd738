"""Every page of the built book, read as a reader would: offline, in headless Chromium."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "_build" / "screenshots"


def _pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        files += [c["file"] for c in part["chapters"]]
    return [f"{f}.html" for f in files]


PAGES = _pages()


def _requests(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _wait(driver, script, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        if driver.execute_script(script):
            return True
        time.sleep(0.2)
    return False


def _figure_state(driver, index):
    return driver.execute_script(
        "const gd = document.querySelectorAll('.plotly-graph-div')[arguments[0]];"
        "return JSON.stringify([gd._fullData.map(t => t.visible),"
        " gd.layout.sliders ? gd.layout.sliders.map(s => s.active) : null]);", index)


def _move_slider(driver, fig_index, slider_index):
    """Click the slider's rail away from its current position, as a reader would drag it."""
    from selenium.webdriver.common.action_chains import ActionChains

    info = driver.execute_script(
        "const gd = document.querySelectorAll('.plotly-graph-div')[arguments[0]];"
        "const s = gd.layout.sliders[arguments[1]];"
        "return [s.active, s.steps.length];", fig_index, slider_index)
    active, steps = info
    rails = driver.execute_script(
        "const gd = document.querySelectorAll('.plotly-graph-div')[arguments[0]];"
        "return Array.from(gd.querySelectorAll('.slider-group .slider-rail-touch-rect'));", fig_index)
    rail = rails[slider_index]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", rail)
    width = rail.rect["width"]
    target = 0 if active > steps // 2 else steps - 1
    # x offset from the rail's centre to the target step (steps are spread evenly along the rail)
    frac = (target + 0.5) / steps
    ActionChains(driver).move_to_element_with_offset(rail, int((frac - 0.5) * width), 0).click().perform()
    return target


@pytest.mark.parametrize("page", PAGES)
def test_page_reads_offline(browser, book_url, page):
    browser.get_log("performance")  # drop entries from earlier pages
    browser.get_log("browser")
    browser.get(f"{book_url}/{page}")
    assert _wait(browser, "return document.readyState === 'complete'")

    # Math: MathJax (served from the book) has typeset every formula.
    n_math = browser.execute_script("return document.querySelectorAll('.math').length")
    if n_math:
        assert _wait(browser, "return !!(window.MathJax && MathJax.startup && MathJax.startup.promise)", 60), \
            "MathJax never loaded"
        browser.execute_async_script("MathJax.startup.promise.then(() => arguments[arguments.length - 1](true));")
        untypeset = browser.execute_script(
            "return Array.from(document.querySelectorAll('.math')).filter(e => !e.querySelector('mjx-container')).length")
        assert untypeset == 0, f"{untypeset} of {n_math} formulas on {page} were not typeset"
        errors = browser.execute_script("return document.querySelectorAll('mjx-merror').length")
        assert errors == 0, f"{errors} MathJax errors on {page}"

    # Figures: every plotly figure is drawn, with data.
    n_fig = browser.execute_script("return document.querySelectorAll('.plotly-graph-div').length")
    assert _wait(browser, "return Array.from(document.querySelectorAll('.plotly-graph-div'))"
                          ".every(gd => gd._fullData && gd._fullData.length > 0 && gd.querySelector('.main-svg'))"), \
        f"a plotly figure on {page} was not drawn"

    # Sliders: moving each one changes the figure.
    for i in range(n_fig):
        n_sliders = browser.execute_script(
            "const gd = document.querySelectorAll('.plotly-graph-div')[arguments[0]];"
            "return (gd.layout.sliders || []).length;", i)
        for j in range(n_sliders):
            before = _figure_state(browser, i)
            target = _move_slider(browser, i, j)
            assert _wait(browser, f"const gd = document.querySelectorAll('.plotly-graph-div')[{i}];"
                                  f"return gd.layout.sliders[{j}].active === {target};", 10), \
                f"slider {j} of figure {i} on {page} did not move"
            assert _figure_state(browser, i) != before, f"slider {j} of figure {i} on {page} did not change the figure"

    # Nothing left localhost, and the console is clean.
    outside = [u for u in _requests(browser)
               if not u.startswith(("http://127.0.0.1", "data:", "blob:", "about:", "chrome"))]
    assert not outside, f"{page} requested outside hosts: {outside[:5]}"
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, f"console errors on {page}: {severe[:5]}"

    if os.environ.get("NCREPRO_SCREENSHOTS", "1") == "1":
        # For people checking the book by eye: the top of each page and every figure.
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        stem = page.replace("/", "_").removesuffix(".html")
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(SCREENSHOTS / f"{stem}.png"))
        for i, element in enumerate(browser.find_elements("css selector", ".plotly-graph-div")):
            browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
            element.screenshot(str(SCREENSHOTS / f"{stem}-figure{i + 1}.png"))
