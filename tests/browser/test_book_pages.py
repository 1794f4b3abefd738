"""Every page of the built book, read as a reader would: offline, in headless Chromium."""

from __future__ import annotations

import json
import os
import re
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


def _until(condition, timeout=10.0):
    """Poll ``condition()`` until it is true or ``timeout`` seconds have passed."""
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return True
        time.sleep(0.2)
    return False


def _wait(driver, script, timeout=30.0):
    return _until(lambda: driver.execute_script(script), timeout)



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
    target = 0 if active >= steps / 2 else steps - 1  # the far end from where it stands
    # x offset from the rail's centre to the target step (steps are spread evenly along the rail)
    frac = (target + 0.5) / steps
    ActionChains(driver).move_to_element_with_offset(rail, int((frac - 0.5) * width), 0).click().perform()
    return target


@pytest.mark.parametrize("page", PAGES)
def test_page_reads_offline(browser, book_url, page):
    browser.get_log("performance")  # drop entries from earlier pages
    browser.get_log("browser")
    _load(browser, f"{book_url}/{page}")

    # Math: MathJax (served from the book) has typeset every formula.
    n_math = browser.execute_script("return document.querySelectorAll('.math').length")
    if n_math:
        assert _wait(browser, "return !!(window.MathJax && MathJax.startup && MathJax.startup.promise)", 60), \
            "MathJax never loaded"
        browser.execute_async_script("MathJax.startup.promise.then(() => arguments[arguments.length - 1](true));")
        untypeset = browser.execute_script(
            "return Array.from(document.querySelectorAll('.math'))"
            ".filter(e => !e.querySelector('mjx-container')).length")
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
        n_drawn = browser.execute_script(
            "const gd = document.querySelectorAll('.plotly-graph-div')[arguments[0]];"
            "return gd.querySelectorAll('.slider-group .slider-rail-touch-rect').length;", i)
        assert n_drawn == n_sliders, f"figure {i} on {page} has {n_sliders} sliders but {n_drawn} are drawn"
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


# The page's prose as a reader sees it: code cells, formulas, scripts and figures (whose axis
# titles may hold |x - y|) left out.
_PROSE = """
const main = document.querySelector('main') || document.body;
const copy = main.cloneNode(true);
copy.querySelectorAll('pre, code, .highlight, script, style, mjx-container, .math, .MathJax, svg, .plotly-graph-div')
    .forEach(e => e.remove());
return copy.innerText;
"""

# A Markdown table that was never parsed: a row of cells between pipes, or a separator row
# (Sphinx turns its `---` into em dashes).
_RAW_TABLE = re.compile(r"\|[^|\n]*\|[^|\n]*\||\|\s*[-\u2013\u2014:]+\s*\|")


_RAW_MATH = re.compile(r"\$[^$\s][^$\n]{0,80}\$")


def _load(browser, url):
    browser.get(url)
    assert _wait(browser, "return document.readyState === 'complete'")


@pytest.mark.parametrize("page", PAGES)
def test_page_structure(browser, book_url, page):
    """Tables are tables, every figure is numbered and captioned, every citation and reference
    resolves, and the footer names the build."""
    _load(browser, f"{book_url}/{page}")
    prose = browser.execute_script(_PROSE)

    raw = [line.strip() for line in prose.splitlines() if _RAW_TABLE.search(line)]
    assert not raw, f"raw Markdown table text on {page}: {raw[:3]}"
    # Maths that was never typeset: $...$ left as text (glued Markdown is not parsed for maths).
    untypeset = _RAW_MATH.findall(prose)
    assert not untypeset, f"untypeset maths on {page}: {untypeset[:3]}"
    # Sphinx writes ?? for a numbered reference it could not resolve, and [?] for a citation.
    for marker in ("??", "[?]"):
        assert marker not in prose, f"unresolved reference ({marker}) on {page}"

    uncaptioned = browser.execute_script("""
        return Array.from(document.querySelectorAll('.plotly-graph-div')).map((gd, i) => {
            const fig = gd.closest('figure');
            const number = fig && fig.querySelector('figcaption .caption-number');
            const text = fig && fig.querySelector('figcaption .caption-text');
            const ok = number && /^Figure \\d+/.test(number.textContent.trim())
                && text && text.textContent.trim().length > 20;
            return ok ? null : i;
        }).filter(i => i !== null);""")
    assert not uncaptioned, f"figures {uncaptioned} on {page} have no numbered caption"

    tables = browser.execute_script(
        "return Array.from(document.querySelectorAll('main table'))"
        ".map(t => [t.querySelectorAll('th').length, t.querySelectorAll('td').length]);")
    assert all(th > 0 and td > 0 for th, td in tables), f"a table on {page} has no header or no cells"

    footer = browser.execute_script(
        "const f = document.querySelector('.ncrepro-build'); return f ? f.textContent : '';")
    assert re.search(r"Built from ncrepro \d+\.\d+\.\d+, commit [0-9a-f]{7,}", footer), \
        f"the footer of {page} does not name the build: {footer!r}"


def test_every_citation_resolves_to_the_references_page(browser, book_url):
    """Each author-year citation links to an entry of the bibliography, and the bibliography
    lists every paper the book cites."""
    _load(browser, f"{book_url}/book/references.html")
    entries = browser.execute_script(
        "return Array.from(document.querySelectorAll('.citation[role=doc-biblioentry]')).map(e => e.id);")
    assert len(entries) >= 10, f"the References page lists {len(entries)} papers"
    cited = set()
    for page in PAGES:
        _load(browser, f"{book_url}/{page}")
        links = browser.execute_script(
            "return Array.from(document.querySelectorAll('main a.reference.internal'))"
            ".map(a => a.getAttribute('href')).filter(h => h && h.includes('references.html#'));")
        for href in links:
            cited.add(href.split("#", 1)[1])
    assert cited, "no page cites a paper"
    missing = cited - set(entries)
    assert not missing, f"citations point at no bibliography entry: {sorted(missing)}"
    uncited = set(entries) - cited
    assert not uncited, f"bibliography entries no page cites: {sorted(uncited)}"


# Relative luminance (0 black, 1 white) of each figure's background, any CSS colour syntax.
_BACKGROUND_LUMINANCE = """
const ctx = document.createElement('canvas').getContext('2d');
const lum = c => { ctx.fillStyle = '#000'; ctx.fillStyle = c; const h = ctx.fillStyle;
    const [r, g, b] = [1, 3, 5].map(i => parseInt(h.substr(i, 2), 16));
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255; };
return Array.from(document.querySelectorAll('.plotly-graph-div'))
    .map(gd => [lum(gd._fullLayout.paper_bgcolor), lum(gd._fullLayout.font.color)]);
"""


@pytest.mark.parametrize("page", ["book/losses.html", "book/ufm-experiments.html"])
def test_figures_follow_dark_mode(browser, book_url, page):
    """Switching the theme to dark restyles every figure dark, and back to light restores it."""
    _load(browser, f"{book_url}/{page}")
    assert _wait(browser, "return Array.from(document.querySelectorAll('.plotly-graph-div'))"
                          ".every(gd => gd._fullLayout && gd.querySelector('.main-svg'))")
    looks = lambda: browser.execute_script(_BACKGROUND_LUMINANCE)  # noqa: E731
    light = looks()
    assert light and all(bg > 0.8 for bg, _ in light), f"figures on {page} are not light to begin with: {light}"
    browser.execute_script("document.documentElement.dataset.theme = 'dark';")
    assert _until(lambda: all(bg < 0.2 and text > 0.6 for bg, text in looks())), \
        f"figures on {page} did not turn dark (background, text luminance): {looks()}"
    browser.execute_script("document.documentElement.dataset.theme = 'light';")
    assert _until(lambda: looks() == light), f"figures on {page} did not return to their light look: {looks()}"



# Every log axis of every figure: its range in decades against the decades its visible data span,
# and its tick labels (SI prefixes such as "100μ" have no place on a dimensionless axis).
_LOG_AXES = """
const out = [];
document.querySelectorAll('.plotly-graph-div').forEach((gd, i) => {
  const fl = gd._fullLayout;
  Object.keys(fl).filter(k => /^[xy]axis\\d*$/.test(k) && fl[k].type === 'log').forEach(k => {
    const ax = fl[k], letter = k[0], id = ax._id;
    const values = [];
    gd._fullData.forEach(t => {
      if (t.visible !== true || (t[letter + 'axis'] || letter) !== id) return;
      (t[letter] || []).forEach(v => { if (typeof v === 'number' && v > 0 && isFinite(v)) values.push(v); });
    });
    const ticks = Array.from(gd.querySelectorAll('.' + id + 'tick text')).map(e => e.textContent);
    out.push({figure: i, axis: k, range: ax.range, lo: values.length ? Math.log10(Math.min(...values)) : null,
              hi: values.length ? Math.log10(Math.max(...values)) : null, ticks});
  });
});
return out;
"""

# Anything wider than the page: the document itself, and each table and figure.
_OVERFLOW = """
const width = document.documentElement.clientWidth;
const wide = [];
if (document.documentElement.scrollWidth > width + 1) wide.push('page scrolls sideways: ' +
    document.documentElement.scrollWidth + ' > ' + width);
// A table may be wider than the page if it scrolls inside a box that is not: measure that box.
const box = e => { for (let b = e; b && b !== document.body; b = b.parentElement) {
  const o = getComputedStyle(b).overflowX; if (o === 'auto' || o === 'scroll' || o === 'hidden') return b; }
  return e; };
document.querySelectorAll('main table, main .plotly-graph-div').forEach((e, i) => {
  const r = box(e).getBoundingClientRect();
  if (r.width > 0 && (r.right > width + 1 || r.left < -1)) wide.push(e.tagName + ' ' + i + ' spans ' +
      Math.round(r.left) + '-' + Math.round(r.right) + ' of ' + width);
});
// A caption reads without scrolling: it wraps inside the box its table scrolls in.
document.querySelectorAll('main table caption').forEach((c, i) => {
  const r = c.getBoundingClientRect(), b = box(c.closest('table')).getBoundingClientRect();
  if (r.width > 0 && r.right > b.right + 1) wide.push('caption ' + i + ' (' + c.textContent.slice(0, 30) +
      ') runs to ' + Math.round(r.right) + ', past its box at ' + Math.round(b.right));
});
return wide;
"""

# WCAG contrast of every caption's text against the background it is painted on.
_CAPTION_CONTRAST = """
const ctx = document.createElement('canvas').getContext('2d');
const rgb = c => { ctx.fillStyle = '#000'; ctx.fillStyle = c; const h = ctx.fillStyle;
  if (h.startsWith('#')) return [1, 3, 5].map(i => parseInt(h.substr(i, 2), 16));
  const m = h.match(/[\\d.]+/g).map(Number); return m[3] === 0 ? null : m.slice(0, 3); };
const lin = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
const lum = c => 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
const background = e => { for (; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor);
  if (c) return c; } return [255, 255, 255]; };
return Array.from(document.querySelectorAll('main figcaption, main table caption')).filter(e => e.offsetParent)
  .map(e => { const a = lum(rgb(getComputedStyle(e).color)), b = lum(background(e));
    return [e.textContent.trim().slice(0, 50), (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)]; });
"""


def _shoot(browser, name):
    if os.environ.get("NCREPRO_SCREENSHOTS", "1") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


@pytest.mark.parametrize("page", PAGES)
def test_page_reads_on_any_screen(browser, book_url, page):
    """At 1,280 px and at 390 px (a phone) nothing is wider than the page and every table caption
    wraps inside its table's visible box; log axes show powers of
    ten and span about their data; no parameters cell is visible; in dark mode every caption has
    a contrast of at least 4.5:1."""
    stem = page.replace("/", "_").removesuffix(".html")
    try:
        for width in (1280, 390):
            browser.set_window_size(width, 1000)
            _load(browser, f"{book_url}/{page}")
            _wait(browser, "return Array.from(document.querySelectorAll('.plotly-graph-div'))"
                           ".every(gd => gd._fullLayout && gd.querySelector('.main-svg'))")
            time.sleep(0.5)  # plotly's responsive resize
            wide = browser.execute_script(_OVERFLOW)
            assert not wide, f"{page} at {width} px: {wide[:3]}"
            _shoot(browser, f"{stem}-{width}px")
        browser.set_window_size(1280, 1000)
        _load(browser, f"{book_url}/{page}")
        _wait(browser, "return Array.from(document.querySelectorAll('.plotly-graph-div'))"
                       ".every(gd => gd._fullLayout && gd.querySelector('.main-svg'))")
        for axis in browser.execute_script(_LOG_AXES):
            where = f"{page}, figure {axis['figure']} {axis['axis']}"
            prefixed = [t for t in axis["ticks"] if re.search(r"\d\s*[yzafpnμumkMGTPEZY]$", t)]
            assert not prefixed, f"{where}: SI prefixes on a log axis: {prefixed[:4]}"
            if axis["lo"] is not None:
                lo, hi = axis["range"]
                excess = (axis["lo"] - lo) + (hi - axis["hi"])
                assert excess < 3, f"{where}: the axis spans {lo:.1f}..{hi:.1f} decades for data in " \
                                   f"{axis['lo']:.1f}..{axis['hi']:.1f}"
        visible_parameters = browser.execute_script(
            "return Array.from(document.querySelectorAll('.tag_parameters, .tag_injected-parameters'))"
            ".filter(e => e.offsetParent).length;")
        assert visible_parameters == 0, f"{page} shows its parameters cell"
        browser.execute_script("document.documentElement.dataset.theme = 'dark';")
        time.sleep(0.3)
        low = [(text, round(ratio, 2)) for text, ratio in browser.execute_script(_CAPTION_CONTRAST) if ratio < 4.5]
        assert not low, f"captions on {page} below 4.5:1 contrast in dark mode: {low[:3]}"
        _shoot(browser, f"{stem}-dark")
    finally:
        browser.execute_script("document.documentElement.dataset.theme = 'light';")
        browser.set_window_size(1280, 1000)


def test_scorecard_verdicts_show_at_a_glance(browser, book_url):
    """Every verdict of the scorecard's grid is on the first screen (1,000 px) at 1,280 px."""
    browser.set_window_size(1280, 1000)
    _load(browser, f"{book_url}/book/scorecard.html")
    bottoms = browser.execute_script(
        "return Array.from(document.querySelectorAll('main table .verdict'))"
        ".map(e => e.getBoundingClientRect().bottom + window.scrollY);")
    assert len(bottoms) == 7, f"the scorecard shows {len(bottoms)} verdicts"
    assert max(bottoms) <= 1000, f"the last verdict ends {max(bottoms):.0f} px down the page"
