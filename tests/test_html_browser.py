"""The HTML report in a real browser — Debian's chromium driven headless by selenium through
chromium-driver (.ci/run installs both; `Service(executable_path=...)` so selenium-manager never
downloads a driver). The page renders every finding and every curve, the filters work, a rule link
opens its explanation, the page is readable with JavaScript off, and the console shows no error."""

from __future__ import annotations

import os
import tempfile

import pytest

from test_html_report import judged

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,1000")

pytestmark = pytest.mark.browser


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    if not (os.access(CHROMIUM, os.X_OK) and os.access(DRIVER, os.X_OK)):
        pytest.skip("chromium and chromium-driver are not installed (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.TemporaryDirectory(prefix="elbolint-chromium-")
    options.add_argument(f"--user-data-dir={profile.name}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        profile.cleanup()


def _visible(driver, selector):
    return [e for e in driver.find_elements("css selector", selector) if e.is_displayed()]


def _check_charts(browser, curves: int) -> None:
    """Every chart is laid out and drawn; one shown again through <use> (a run that judged several
    findings) draws the same graphics, its own box on the page."""
    drawn = browser.execute_script("""
        return Array.from(document.querySelectorAll('svg.curve')).map(function (svg) {
          var box = svg.getBoundingClientRect(), use = svg.querySelector('use');
          var root = use ? document.getElementById(svg.dataset.use) : svg;
          var lengths = Array.from(root.querySelectorAll('path.series')).map(function (p) {
            return [p.getAttribute('d').split(' ').length / 2, p.getTotalLength()]; });
          var graphics = (use || root.querySelector('g')).getBBox();
          return [box.width, box.height, lengths, root.querySelectorAll('circle.point, text.point').length,
                  graphics.width, graphics.height, !!use];
        });""")
    assert len(drawn) == curves and any(shown_again for *_, shown_again in drawn)
    for width, height, lengths, points, graphics_width, graphics_height, _ in drawn:
        assert width > 200 and height > 80 and graphics_width > 200 and graphics_height > 80
        assert lengths or points
        assert all(length > 0 for vertices, length in lengths if vertices > 1)

    # a chart shown through <use> has its drawing's geometry; its look is in attributes (fill="none" on
    # the frame, not page CSS, which does not reach a <use> copy: without them the frame is filled black)
    boxes = browser.execute_script("""
        var copy = document.querySelector('svg.curve[data-use]'), id = copy.dataset.use;
        var a = copy.querySelector('use').getBBox(), b = document.getElementById(id + '-g').getBBox();
        var frame = document.getElementById(id).querySelector('rect.frame');
        return [[a.x, a.y, a.width, a.height], [b.x, b.y, b.width, b.height], frame.getAttribute('fill')];""")
    assert boxes[0] == boxes[1] and boxes[2] == "none"


def _check_filters(browser, diagnostics, total: int) -> None:
    """Filters: hide one code, then one status; the page's count and the file's follow."""
    elb001 = [d for d in diagnostics if d.code == "ELB001"]
    browser.find_element("css selector", 'input[name="code"][value="ELB001"]').click()
    assert len(_visible(browser, "details.finding")) == total - len(elb001)
    assert not _visible(browser, 'details.finding[data-code="ELB001"]')
    assert browser.find_element("id", "shown").text == str(total - len(elb001))
    # the file's own count follows the filters too
    assert browser.find_element("css selector", "section.file h3 .count").text == f"{total - len(elb001)} of {total}"
    browser.find_element("css selector", 'input[name="code"][value="ELB001"]').click()
    observed = [d for d in diagnostics if (d.dynamic or {}).get("status") == "observed"]
    assert observed
    browser.find_element("css selector", 'input[name="status"][value="observed"]').click()
    assert len(_visible(browser, "details.finding")) == total - len(observed)
    browser.find_element("css selector", 'input[name="status"][value="observed"]').click()
    assert len(_visible(browser, "details.finding")) == total


def _check_rule_link(browser) -> None:
    """A finding's rule link opens the rule's explanation."""
    browser.find_element("id", "collapse").click()
    rule = browser.find_element("id", "rule-ELB001")
    browser.execute_script("arguments[0].open = false", rule)
    browser.find_element("css selector", 'details.finding[data-code="ELB001"] > summary').click()
    browser.find_element("css selector", 'details.finding[data-code="ELB001"] p.rule a').click()
    assert rule.get_attribute("open") is not None and "Why is this bad?" in rule.text


def test_the_report_renders_every_finding_and_curve_and_filters(browser, tmp_path):
    from elbolint.reporters import html

    diagnostics, evidence = judged()
    page = html.render(diagnostics, evidence)
    report = tmp_path / "report.html"
    report.write_text(page, encoding="utf-8")
    browser.get(report.as_uri())
    total = len(diagnostics)
    curves = page.count('<svg class="curve"')
    assert total >= 4 and curves >= 4
    assert browser.find_element("id", "filters").is_displayed()  # the script revealed the filters
    assert len(browser.find_elements("css selector", "details.finding")) == total

    browser.find_element("id", "expand").click()
    assert len(_visible(browser, "details.finding[open]")) == total
    _check_charts(browser, curves)
    _check_filters(browser, diagnostics, total)
    _check_rule_link(browser)

    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []

    # an empty report: no empty filter boxes, and the script has nothing to fail on
    empty = tmp_path / "empty.html"
    empty.write_text(html.render([]), encoding="utf-8")
    browser.get(empty.as_uri())
    assert not browser.find_elements("id", "filters") and "No findings." in browser.page_source
    assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")] == []
    browser.get(report.as_uri())

    # without JavaScript: no filters, every finding listed, the dynamic verdicts open with their curves
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    browser.get(report.as_uri())
    assert not browser.find_element("id", "filters").is_displayed()
    assert len(_visible(browser, "details.finding > summary")) == total
    opened = page.count('" open>')
    assert opened >= 2 and len(_visible(browser, "svg.curve")) == curves  # every curve is in an open verdict
