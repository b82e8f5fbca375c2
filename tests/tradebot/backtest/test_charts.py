"""report.html in a real headless browser: it renders with no error and its charts are drawn."""
from __future__ import annotations

from tests.browser import browser_page


def test_report_renders_its_charts_without_errors(simulated_run):
    with browser_page() as (page, problems):
        page.goto((simulated_run["first"] / "report.html").as_uri())
        page.wait_for_selector(".plotly .main-svg")
        charts = page.locator(".plotly-graph-div").count()
        drawn = page.evaluate("() => [...document.querySelectorAll('.plotly-graph-div')]"
                              ".map(d => d.querySelectorAll('.main-svg path, .main-svg rect.bg').length)")
        menu = page.locator(".updatemenu-container").count()
        cards = page.locator(".card").count()
        width = page.evaluate("() => document.documentElement.scrollWidth")
    assert problems.all() == []
    assert charts == 4 and all(n > 0 for n in drawn)  # equity, drawdown, per symbol, price
    assert menu == 1 and cards == 6
    assert width <= 1366  # no sideways scrolling on a laptop screen
