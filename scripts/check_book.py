"""Open every page of the built website in headless Chromium and fail on anything a reader would
see broken.

    python scripts/check_book.py build/book/html

Each page is served from a local HTTP server (fonts do not load from file:// pages), in a window
1400 pixels wide, and checked for: a console error, a request that leaves the site, an image that
does not load, a formula that MathJax did not typeset (an error, or raw TeX such as $...$ or \\(
left in the text), a Markdown table left as text (a line of `| --- |` outside code blocks), a block
of code that scrolls sideways, a link to a page or an anchor of the site that does not exist, and a
"Deep dive" section that is not folded: its heading must be the summary of a closed <details>
element whose content is hidden and shows on a click on the heading, and a chapter's page must fold
as many deep dives as its notebook has. Before the site, a page made here with a raw table, a
too-wide code block and an unfolded deep dive must fail those three checks, and a folded deep dive
on the same page must pass. It uses Debian's chromium and chromedriver, never a downloaded browser.
"""

import argparse
import functools
import http.server
import json
import re
import sys
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1400, 1600)
# The separator line of a Markdown table, its dashes perhaps turned into en or em dashes by
# Sphinx's smartquotes: | --- | :---: |, |---|---|, | — | — |.
RAW_TABLE = re.compile(r"^[ \t]*\|(?:[ \t]*:?(?:-{3,}|[—–]+):?[ \t]*\|)+[ \t]*$", re.MULTILINE)
RAW_TEX = re.compile(r"\$[^$\s][^$]*\$|\\\(|\\\)|\\\[|\\\]|\\(frac|begin|mathrm|sigma|lambda)\b")
# A Markdown heading that opens a deep dive, as the notebooks write it.
DEEP_DIVE_HEADING = re.compile(r"^#{1,6} Deep dive", re.MULTILINE)

# Runs in the page once MathJax has typeset it: what did not load or render, and every link.
PAGE_REPORT = """
const done = arguments[arguments.length - 1];
const ready = window.MathJax && MathJax.startup ? MathJax.startup.promise : Promise.resolve();
ready.then(() => {
  const visibleText = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode: n => n.parentElement.closest(\
'pre, code, script, style, mjx-container, mjx-assistive-mml')
      ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
  while (walker.nextNode()) visibleText.push(walker.currentNode.textContent);
  done({
    brokenImages: [...document.images].filter(i => !i.complete || i.naturalWidth === 0)
                                      .map(i => i.getAttribute('src').slice(0, 80)),
    mathErrors: [...document.querySelectorAll('mjx-merror')].map(e => e.textContent),
    formulas: document.querySelectorAll('mjx-container').length,
    // Code, in a cell or a highlighted block of a Markdown cell (not a cell's output), whose lines
    // do not fit: the reader would have to scroll sideways.
    wideCode: [...document.querySelectorAll('div.cell_input pre, div.highlight pre')]
      .filter(e => !e.closest('.cell_output, .output') && e.scrollWidth > e.clientWidth + 1)
      .map(e => `${e.scrollWidth} > ${e.clientWidth} pixels: ${e.textContent.slice(0, 60)}`),
    // Every heading that opens a deep dive: is it the summary of a closed <details>, and is the
    // rest of the section hidden (checkVisibility: not rendered) while the heading shows?
    deepDives: [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')]
      .filter(h => h.textContent.trim().startsWith('Deep dive'))
      .map(h => {
        const summary = h.parentElement;
        const details = summary.parentElement;
        const folded = summary.tagName === 'SUMMARY' && details.tagName === 'DETAILS'
          && details.classList.contains('deep-dive') && details.firstElementChild === summary;
        const content = folded ? [...details.children].slice(1) : [];
        return {heading: h.textContent.trim().slice(0, 70), folded, closed: folded && !details.open,
                headingShown: h.checkVisibility(), content: content.length,
                contentShown: content.some(e => e.checkVisibility())};
      }),
    width: window.innerWidth,
    text: visibleText.join(' '),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    resources: performance.getEntriesByType('resource').map(r => r.name),
  });
}, error => done({fatal: String(error)}));
"""


class _Ids(HTMLParser):
    """The ids of a page's elements: what a #fragment can point at."""

    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        self.ids.update(value for name, value in attrs if name in ("id", "name") and value)


@functools.cache
def page_ids(path: Path) -> frozenset:
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8"))
    return frozenset(parser.ids)


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(site))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    driver.set_window_size(*WINDOW)
    return driver


def link_problem(link: str, base: str, site: Path) -> str | None:
    """Why a link into the site is broken, or None (links out of the site are not followed)."""
    if not link.startswith(base):
        return None
    parts = urlsplit(link)
    target = site / unquote(parts.path[len(urlsplit(base).path) :])
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"no such page: {link}"
    fragment = unquote(parts.fragment)
    if fragment and target.suffix == ".html" and fragment not in page_ids(target):
        return f"no anchor #{fragment} in {target.relative_to(site)}"
    return None


def fold_problems(driver: webdriver.Chrome, deep_dives: list[dict]) -> list[str]:
    """What is wrong with the page's deep dives: one not folded, or folded but shown, empty, or not
    opened by a click on its heading."""
    problems = []
    for dive in deep_dives:
        if not dive["folded"]:
            problems.append(f"deep dive not folded: {dive['heading']}")
        elif not (dive["closed"] and dive["headingShown"] and dive["content"]):
            problems.append(f"deep dive not closed, heading hidden or empty: {dive}")
        elif dive["contentShown"]:
            problems.append(f"deep dive content shown while closed: {dive['heading']}")
    shown = (
        "const details = arguments[0].parentElement;"
        "return details.open && [...details.children].slice(1).some(e => e.checkVisibility());"
    )
    # Each is opened by a click, checked, and closed again, so that the page keeps its layout.
    for summary in driver.find_elements(By.CSS_SELECTOR, "details.deep-dive > summary"):
        driver.execute_script(
            "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", summary
        )
        summary.click()
        if not driver.execute_script(shown, summary):
            problems.append(f"deep dive does not open on a click: {summary.text[:70]}")
        summary.click()
    return problems


def notebook_deep_dives(page: Path, site: Path) -> int | None:
    """How many deep dives the notebook behind a chapter's page has (None for other pages)."""
    if not page.is_relative_to(site / "notebooks"):
        return None
    notebook = NOTEBOOKS / page.relative_to(site / "notebooks").with_suffix(".ipynb")
    if not notebook.is_file():
        return None
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return sum(
        len(DEEP_DIVE_HEADING.findall("".join(cell["source"])))
        for cell in cells
        if cell["cell_type"] == "markdown"
    )


def check_page(
    driver: webdriver.Chrome, url: str, base: str, site: Path, deep_dives: int | None = None
) -> list[str]:
    """The problems of one page; deep_dives, where given, is how many it must fold."""
    driver.get(url)
    report = driver.execute_async_script(PAGE_REPORT)
    if "fatal" in report:
        return [f"MathJax did not start: {report['fatal']}"]
    problems = [
        f"console: {entry['message']}"
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE"
    ]
    if report["width"] != WINDOW[0]:
        problems.append(f"window {report['width']} pixels wide, not {WINDOW[0]}")
    problems += [f"image not loaded: {src}" for src in report["brokenImages"]]
    problems += [f"MathJax error: {text}" for text in report["mathErrors"]]
    problems += [
        f"request outside the site: {name}"
        for name in report["resources"]
        if not name.startswith(base)
    ]
    problems += [
        f"formula left as TeX: ...{report['text'][max(m.start() - 30, 0) : m.end() + 30]}..."
        for m in RAW_TEX.finditer(report["text"])
    ]
    problems += [
        f"Markdown table left as text: {report['text'][max(m.start() - 60, 0) : m.end()]!r}"
        for m in RAW_TABLE.finditer(report["text"])
    ]
    problems += [f"code scrolls sideways: {text}" for text in report["wideCode"]]
    problems += fold_problems(driver, report["deepDives"])
    if deep_dives is not None and len(report["deepDives"]) != deep_dives:
        problems.append(
            f"deep dives: {len(report['deepDives'])} on the page, {deep_dives} in the notebook"
        )
    problems += sorted({p for link in report["links"] if (p := link_problem(link, base, site))})
    return problems


# A page with one of each problem the checks of a page's layout must catch, and the same text where
# it is fine: a raw table inside a code block, a wide line in a cell's output (outputs may scroll),
# a deep dive folded as the site folds them.
SELF_TEST_PAGE = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>self-test</title></head>
<body style="width: 600px">
<p>| model | top-1 % |
| --- | --- |
| resnet20 | 92.33 |</p>
<div class="cell_input"><div class="highlight">
<pre style="overflow-x: auto">x = [{"1, " * 80}]</pre></div></div>
<div class="cell_output"><div class="output highlight"><pre style="overflow-x: auto">{"9 " * 200}
| --- | --- |</pre></div></div>
<section><h3>Deep dive: left open</h3><p>a proof</p></section>
<section><details class="deep-dive"><summary><h3>Deep dive: folded</h3></summary>
<p>a proof</p></details></section>
</body></html>
"""


def self_test(driver: webdriver.Chrome) -> None:
    """Fail unless the page above fails the table, code and fold checks, each exactly once."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "index.html").write_text(SELF_TEST_PAGE, encoding="utf-8")
        server, base = serve(Path(folder))
        try:
            problems = check_page(driver, base + "index.html", base, Path(folder))
        finally:
            server.shutdown()
    caught = [p.split(":")[0] for p in problems]
    expected = ["Markdown table left as text", "code scrolls sideways", "deep dive not folded"]
    if caught != expected:
        sys.exit(
            "self-test: a page with one raw table, one wide code block and one unfolded deep dive "
            f"gave {problems}"
        )
    print(
        "self-test: a raw Markdown table, a code block that scrolls sideways and an unfolded deep "
        "dive are caught; a folded deep dive passes"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, help="the folder sphinx-build wrote the HTML into")
    site = parser.parse_args().site.resolve()
    pages = sorted(site.rglob("*.html"))
    if not pages:
        sys.exit(f"no HTML pages under {site}: run `make book` first")
    server, base = serve(site)
    driver = browser()
    failures = 0
    try:
        self_test(driver)
        for page in pages:
            url = urljoin(base, page.relative_to(site).as_posix())
            problems = check_page(driver, url, base, site, notebook_deep_dives(page, site))
            failures += bool(problems)
            print(f"{'FAIL' if problems else 'ok  '} {page.relative_to(site)}")
            for problem in problems:
                print(f"       {problem}")
    finally:
        driver.quit()
        server.shutdown()
    print(f"book: {len(pages) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
