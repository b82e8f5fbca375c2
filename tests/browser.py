"""A real headless browser for page and report tests: Debian's chromium driven by playwright.

``.ci/run`` installs chromium (``apt-get install chromium``); playwright is pinned in
requirements.txt and never downloads a browser of its own. Pages under test should declare an
icon (``<link rel="icon" href="data:,">``) so the browser's favicon request is not a 404 error.
"""

import contextlib
import shutil
from dataclasses import dataclass, field

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags this machine's closed network needs (no background connections, no QUIC).
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@dataclass
class PageProblems:
    """What the page reported while it was open: console errors, uncaught errors, failed requests."""

    console_errors: list = field(default_factory=list)
    page_errors: list = field(default_factory=list)
    failed_requests: list = field(default_factory=list)

    def all(self):
        return self.console_errors + self.page_errors + self.failed_requests


@contextlib.contextmanager
def browser_page(*, width=1366, height=800, timeout_ms=15_000):
    """Yield (page, problems): a fresh chromium page of a laptop's size, recording its problems."""
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        raise RuntimeError(f"no chromium at {CHROMIUM}: apt-get install chromium (bash .ci/run does)")
    problems = PageProblems()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(timeout_ms)
            page.on("console", lambda msg: problems.console_errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: problems.page_errors.append(str(exc)))
            page.on("requestfailed", lambda req: problems.failed_requests.append(f"{req.url}: {req.failure}"))
            yield page, problems
        finally:
            browser.close()
