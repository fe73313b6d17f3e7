"""The run report: one self-contained HTML page, checked in a real headless browser.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` (``make browser``
installs them); it is skipped, saying so, only when they are absent.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lenskit.cli import main
from lenskit.rundir import RunStore

from .test_figures import sweep_frame


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A real run directory (manifest + cell files) of a two-model sweep, reported by the
    CLI: ``lenskit report RUN_DIR --out FILE``."""
    tmp = tmp_path_factory.mktemp("report")
    results = sweep_frame(models=("m", "s"))
    with RunStore.open(tmp / "run", {"name": "tiny", "models": ["m", "s"]}) as store:
        for cell_id, rows in results.groupby("cell_id", sort=False):
            store.write_cell(str(cell_id), rows.reset_index(drop=True))
    out = tmp / "out" / "page.html"
    assert main(["report", str(tmp / "run"), "--out", str(out)]) == 0
    return out


def test_report_is_self_contained(report):
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # no external scripts or styles: vega, vega-lite and vega-embed are inlined
    assert "<script src" not in page and "<link" not in page
    assert "vegaEmbed" in page and len(page) > 500_000
    for part in ("Explorer", "Thresholds", "Comparison with the study", "Manifest",
                 "&quot;name&quot;: &quot;tiny&quot;", "pick_model", "pick_task"):
        assert part in page, part
    # one embed per chart: explorer, fig1, fig2 (one model/method), fig3, fig4
    assert page.count("vegaEmbed('#chart") == 5


def test_report_of_a_missing_run_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "not a lenskit run directory" in capsys.readouterr().err


def _browser() -> tuple[str, str]:
    chromium = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("chromium/chromedriver not installed (`make browser` installs Debian's "
                    "chromium and chromium-driver)")
    return chromium, driver


def test_report_draws_in_a_headless_browser(report, tmp_path):
    chromium, driver = _browser()
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import Select, WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,3000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    try:
        browser.get(report.as_uri())
        n = browser.execute_script("return document.querySelectorAll('div.chart').length")
        assert n == 5
        WebDriverWait(browser, 60).until(lambda b: b.execute_script(
            "return document.querySelectorAll('div.chart svg').length") == n)
        # every chart drew: an SVG of non-zero size holding marks
        drawn = browser.execute_script("""
            return [...document.querySelectorAll('div.chart')].map(div => {
              const svg = div.querySelector('svg'); const box = svg.getBoundingClientRect();
              return [div.dataset.name, box.width, box.height,
                      svg.querySelectorAll('path, line, circle, rect, text').length];
            });""")
        for name, width, height, marks in drawn:
            assert width > 100 and height > 100 and marks > 20, (name, width, height, marks)
        # the explorer's menus: model, method, scope, task; picking a task redraws
        selects = browser.find_elements("css selector", "#chart0 select")
        assert len(selects) == 4
        before = browser.execute_script(
            "return document.querySelectorAll('#chart0 svg path').length")
        Select(selects[3]).select_by_visible_text("facts")
        WebDriverWait(browser, 10).until(lambda b: b.execute_script(
            "return document.querySelectorAll('#chart0 svg path').length") != before)
        shot = tmp_path / "report.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        browser.quit()
