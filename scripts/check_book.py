"""Open every page of the built website in headless Chromium and fail on anything a reader would
see broken.

    python scripts/check_book.py build/book/html

Each page is served from a local HTTP server (fonts do not load from file:// pages), in a window
1400 pixels wide, and checked for: a console error, a request that leaves the site, an image that
does not load, a formula that MathJax did not typeset (an error, or raw TeX such as $...$ or \\(
left in the text), a Markdown table left as text (a line of `| --- |` outside code blocks), a block
of code that scrolls sideways, and a link to a page or an anchor of the site that does not exist.
Before the site, a page made here with a raw table and a too-wide code block must fail both checks.
It uses Debian's chromium and chromedriver, never a downloaded browser.
"""

import argparse
import functools
import http.server
import re
import sys
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1400, 1600)
# The separator line of a Markdown table, its dashes perhaps turned into en or em dashes by
# Sphinx's smartquotes: | --- | :---: |, |---|---|, | — | — |.
RAW_TABLE = re.compile(r"^[ \t]*\|(?:[ \t]*:?(?:-{3,}|[—–]+):?[ \t]*\|)+[ \t]*$", re.MULTILINE)
RAW_TEX = re.compile(r"\$[^$\s][^$]*\$|\\\(|\\\)|\\\[|\\\]|\\(frac|begin|mathrm|sigma|lambda)\b")

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


def check_page(driver: webdriver.Chrome, url: str, base: str, site: Path) -> list[str]:
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
    problems += sorted({p for link in report["links"] if (p := link_problem(link, base, site))})
    return problems


# A page with one of each problem the checks of a page's layout must catch, and the same text where
# it is fine: a raw table inside a code block, a wide line in a cell's output (outputs may scroll).
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
</body></html>
"""


def self_test(driver: webdriver.Chrome) -> None:
    """Fail unless the page above fails the table check and the code check, each exactly once."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "index.html").write_text(SELF_TEST_PAGE, encoding="utf-8")
        server, base = serve(Path(folder))
        try:
            problems = check_page(driver, base + "index.html", base, Path(folder))
        finally:
            server.shutdown()
    caught = [p.split(":")[0] for p in problems]
    expected = ["Markdown table left as text", "code scrolls sideways"]
    if caught != expected:
        sys.exit(f"self-test: a page with one raw table and one wide code block gave {problems}")
    print("self-test: a raw Markdown table and a code block that scrolls sideways are caught")


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
            problems = check_page(driver, url, base, site)
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
