"""The UI in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
driven through Selenium's WebDriver) opens the agents' asset graph and the Insight agent's
asset page of a demo org after a run materialized it, saves screenshots, and asserts on what
the browser rendered — asset names in the graph, the asset's metadata, and its Markdown report
rendered (headings as text, trend plots as images), with the health score the run recorded.

Skipped, saying how to install it, where Chromium is not installed (``.ci/run`` installs it).
Screenshots go to ``$AICOLLEAGUE_TEST_ARTIFACTS/ui`` when set, else to a pytest temp folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from aicolleague_pipelines_tests.ui_fixtures import DEMO_ORG, DagsterDev

CHROMIUM = Path(os.environ.get("AICOLLEAGUE_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("AICOLLEAGUE_CHROMEDRIVER", "/usr/bin/chromedriver"))
#: How long rendered text may take to appear (the UI fetches over GraphQL after the page loads).
RENDER_TIMEOUT_S = 60

_MISSING = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]

# Checked before any fixture starts: no `dagster dev` for a test that cannot run.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(bool(_MISSING), reason=f"headless Chromium not installed ({', '.join(_MISSING)} "
                       "missing): apt-get install -y chromium chromium-driver (.ci/run installs them)"),
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a dev dependency: pip install -e '.[dev]'")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1600,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager never tries to download a driver.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(RENDER_TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = os.environ.get("AICOLLEAGUE_TEST_ARTIFACTS")
    if base:
        out = Path(base) / "ui"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        return out
    return tmp_path_factory.mktemp("ui_screenshots")


def _wait_for_text(driver, texts: list[str], where: str = "body", timeout: float = RENDER_TIMEOUT_S) -> str:
    """The rendered text of the first element matching the CSS selector ``where`` once it
    contains every one of ``texts``; a timeout names what is missing."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    seen = {"text": ""}

    def ready(d) -> bool:
        elements = d.find_elements(By.CSS_SELECTOR, where)
        seen["text"] = elements[0].text if elements else ""
        return all(t in seen["text"] for t in texts)

    try:
        WebDriverWait(driver, timeout, poll_frequency=0.5).until(ready)
    except TimeoutException:
        missing = [t for t in texts if t not in seen["text"]]
        raise AssertionError(f"{driver.current_url}: {missing} not rendered in {timeout} s; "
                             f"rendered text was:\n{seen['text'][:2000]}") from None
    return seen["text"]


def _shot(driver, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, f"{path} is not a real screenshot"
    return path


LATEST_HEALTH_Q = """query($key: AssetKeyInput!, $partition: String!) {
  assetOrError(assetKey: $key) { ... on Asset { assetMaterializations(partitions: [$partition], limit: 1) {
    runId metadataEntries { label ... on FloatMetadataEntry { floatValue } } } } } }"""


def test_asset_graph_and_agent_asset_page_render_in_chromium(
    dagster_dev: DagsterDev, browser, screenshots: Path
) -> None:
    # Pages only after the code location is LOADED (the fixture waits) and the run finished.
    run_id, status = dagster_dev.refresh(DEMO_ORG)
    assert status == "SUCCESS", dagster_dev.log_tail()
    (mat,) = dagster_dev.gql(LATEST_HEALTH_Q, {"key": {"path": ["insight_report"]}, "partition": DEMO_ORG}
                             )["assetOrError"]["assetMaterializations"]
    assert mat["runId"] == run_id
    health = next(e["floatValue"] for e in mat["metadataEntries"] if e["label"] == "health_score")

    from selenium.webdriver.common.by import By

    # The agents' asset graph: agent assets drawn as nodes, the upstream extraction linked (the
    # graph renders only the nodes in view, so these are ones the initial layout shows).
    browser.get(f"{dagster_dev.url}/locations/aicolleague_pipelines/asset-groups/agents")
    # ... and, once their status has loaded, the one org's partition materialized.
    _wait_for_text(browser, ["triage_findings", "insight_report", "fix_plans", "sf_inventory",
                             "100% filled", "1 partition"])
    _shot(browser, screenshots, "agents_asset_graph")

    # The Insight agent's page for the demo org: its description and metadata as rendered.
    browser.get(f"{dagster_dev.url}/assets/insight_report?partition={DEMO_ORG}")
    text = _wait_for_text(browser, ["insight_report", "health score 0–100", "health_score",
                                    "health_breakdown", "recommendations", "[Show Markdown]"])
    assert f"{health:g}" in text, f"health score {health:g} of run {run_id} not shown:\n{text[:2000]}"
    assert DEMO_ORG in text
    _shot(browser, screenshots, "insight_report_page")

    # Its Markdown report, rendered: headings as text (no raw '#'), the score, plots as images.
    browser.find_element(By.XPATH, "//*[normalize-space(text())='[Show Markdown]']").click()
    report = _wait_for_text(browser, [f"Insight: org {DEMO_ORG}", "Health score:", "Top recommendations",
                                      "Hotspots", "Trends"], where="[role='dialog']")
    assert f"{health:g} / 100" in report
    assert "###" not in report and "**" not in report, "the Markdown was shown raw, not rendered"
    images = browser.find_elements(By.CSS_SELECTOR, "[role='dialog'] img[src^='data:image/png']")
    assert images, "the report's trend plots did not render as images"
    assert browser.execute_script("return arguments[0].naturalWidth", images[0]) > 100
    _shot(browser, screenshots, "insight_report_markdown")
