"""The browser kit itself: a page renders, and its console errors and failed requests are caught."""

from tests.browser import browser_page


def test_a_clean_page_renders_with_no_problem(tmp_path):
    page_file = tmp_path / "ok.html"
    page_file.write_text('<html><head><link rel="icon" href="data:,"></head><body><h1 id="t">ready</h1></body></html>')
    with browser_page() as (page, problems):
        page.goto(page_file.as_uri())
        assert (page.inner_text("#t"), problems.all()) == ("ready", [])


def test_console_errors_uncaught_errors_and_failed_requests_are_reported(tmp_path):
    page_file = tmp_path / "bad.html"
    page_file.write_text(
        '<html><head><link rel="icon" href="data:,"></head><body>'
        "<script>console.error('boom')</script><script>undefined_name()</script>"
        '<img src="http://127.0.0.1:9/missing.png"></body></html>'
    )
    with browser_page() as (page, problems):
        page.goto(page_file.as_uri())
        page.wait_for_load_state("load")
        assert "boom" in problems.console_errors
        assert any("undefined_name" in e for e in problems.page_errors)
        assert any("missing.png" in r for r in problems.failed_requests)
