"""The demo in a real browser: Debian's chromium driven by Python playwright (`pip install playwright`; never
`playwright install`: the system chromium is used). Upload a London Set face, type, click, wait for the audio
player, download the audio and check it, take a screenshot, and check that the page made no request off the
machine (the app must run offline: no CDN, no web fonts, no analytics).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.test_app import FACE, assert_marked_synthetic, running_app

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]  # fmt: skip


def test_upload_type_click_and_hear(tiny_checkpoint: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (apt-get install chromium)")

    with running_app(["--model", str(tiny_checkpoint), "--allow-untrained"], tmp_path / "app.log") as url:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1300})
                off_machine: list[str] = []
                page.on(
                    "request",
                    lambda request: (
                        None if request.url.startswith((url, "blob:", "data:")) else off_machine.append(request.url)
                    ),
                )
                page.goto(url)
                page.wait_for_selector("#ftv-synthesize")
                assert "Untrained model" in page.locator("#ftv-banner").inner_text()
                assert "Consent" in page.locator("#ftv-notice").inner_text()
                assert "London Set" in page.locator("#ftv-credits").inner_text()

                page.locator("#ftv-photo input[type=file]").set_input_files(str(FACE))
                page.locator("#ftv-text textarea").fill("Hello there. This is my new voice.")

                # Without consent the request is refused, and the user sees why.
                page.locator("#ftv-synthesize").click()
                page.get_by_text("Please confirm first").wait_for(timeout=30_000)

                page.locator("#ftv-consent input[type=checkbox]").check()
                page.locator("#ftv-synthesize").click()
                link = page.locator("#ftv-audio a[download]")  # the player's download button
                link.wait_for(state="attached", timeout=120_000)
                assert page.locator("#ftv-audio audio").count() >= 1
                page.get_by_text("sentence(s)").wait_for(timeout=30_000)

                name = link.get_attribute("download")
                assert name and name.startswith("ftv-synthetic-") and name.endswith(".wav")
                response = page.request.get(link.get_attribute("href"))
                assert response.ok
                downloaded = tmp_path / name
                downloaded.write_bytes(response.body())
                assert_marked_synthetic(downloaded)

                assert page.locator("#ftv-crops img").count() == 1
                assert "female" in page.locator("#ftv-gender").inner_text()
                page.screenshot(path=str(tmp_path / "ftv_app.png"), full_page=True)
                assert (tmp_path / "ftv_app.png").stat().st_size > 10_000
                assert off_machine == [], f"the page fetched from outside the machine: {off_machine}"
            finally:
                browser.close()
