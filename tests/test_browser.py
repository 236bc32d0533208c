"""The demo in a real browser: Debian's chromium driven by Python playwright (`pip install playwright`; never
`playwright install`: the system chromium is used). Upload a London Set face, type, click, hear the live player
start on the first sentence, wait for the whole text's player, download the audio and check it, check the face
reading it shows against the model's own (computed here, apart from the app), take a screenshot, and check that the
page made no request off the machine (the app must run offline: no CDN, no web fonts, no analytics).
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


def model_reading(checkpoint: Path, attribute: str) -> list[tuple[str, str]]:
    """What the checkpoint's face head reads from FACE, computed in this process: (class, percent as gr.Label shows
    it) from the most to the least probable."""
    from PIL import Image

    from ftv_model.synthesis import Synthesizer

    synthesizer = Synthesizer(str(checkpoint), allow_untrained=True)
    probabilities = synthesizer.synthesize(Image.open(FACE), "Hello there.", seed=0).attributes[attribute]
    ranked = sorted(probabilities.items(), key=lambda item: item[1], reverse=True)
    return [(label, f"{int(probability * 100 + 0.5)}%") for label, probability in ranked]  # JS Math.round


def shown_reading(label) -> tuple[str, list[tuple[str, str]]]:
    """A rendered gr.Label: its heading (the top class) and its (class, percent) rows, in the order listed."""
    heading = label.locator("[data-testid=label-output-value]").inner_text().strip()
    rows = label.locator(".confidence-set")
    listed = [
        (rows.nth(i).locator("dt").inner_text().strip(), rows.nth(i).locator("dd").inner_text().strip())
        for i in range(rows.count())
    ]
    return heading, listed


def test_upload_type_click_and_hear(tiny_checkpoint: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    # The tiny random model's reading is near chance (this face: female 50.02%, male 49.98%, listed male first by the
    # model), so the expected classes are the model's own ranking, computed here: the label must show its top class
    # as the heading, list the classes in that order and show their percentages.
    gender_reading = model_reading(tiny_checkpoint, "gender")

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
                toast = page.locator("[data-testid=toast-body]")
                assert "Consent needed" in toast.first.inner_text()  # the app's title, not only "Error"

                # The button streams: the live player gets each sentence's WAV as soon as it is spoken and plays it.
                page.evaluate(
                    "() => document.addEventListener('playing', (event) => {"
                    " if (event.target.closest('#ftv-live')) window.ftvLivePlayed = true; }, true)"
                )
                page.locator("#ftv-consent input[type=checkbox]").check()
                page.locator("#ftv-synthesize").click()
                page.wait_for_function("() => window.ftvLivePlayed === true", timeout=120_000)
                assert page.locator("#ftv-live audio").get_attribute("src").startswith("data:audio/wav;base64,")
                link = page.locator("#ftv-audio a[download]")  # the whole text's player: its download button
                link.wait_for(state="attached", timeout=120_000)
                assert page.locator("#ftv-audio audio").count() >= 1
                page.get_by_text("sentence(s)").wait_for(timeout=30_000)
                toast.first.wait_for(state="detached", timeout=10_000)  # the earlier error is closed by the success

                name = link.get_attribute("download")
                assert name and name.startswith("ftv-synthetic-") and name.endswith(".wav")
                response = page.request.get(link.get_attribute("href"))
                assert response.ok
                downloaded = tmp_path / name
                downloaded.write_bytes(response.body())
                assert_marked_synthetic(downloaded)

                # The voice as a profile, next to the audio: a JSON download with F and no pixels. Uploaded back, it
                # sets the advanced settings it was saved with.
                profile_link = page.locator("#ftv-voice-out a[download]").first
                profile_link.wait_for(state="attached", timeout=30_000)
                profile = page.request.get(profile_link.get_attribute("href"))
                assert profile.ok and b'"format": "ftv-voice-profile"' in profile.body()
                (tmp_path / "voice.json").write_bytes(profile.body())
                page.locator("#ftv-voice-in input[type=file]").set_input_files(str(tmp_path / "voice.json"))
                page.locator("#ftv-voice-in").get_by_text("voice.json").first.wait_for(timeout=30_000)

                assert page.locator("#ftv-crops img").count() == 1
                heading, listed = shown_reading(page.locator("#ftv-gender"))
                assert heading == gender_reading[0][0] and listed == gender_reading, (heading, listed)
                # Text in a script the voice cannot read is refused with a message that says so (it used to be read
                # out as "Chinese letter, Chinese letter, ...").
                page.locator("#ftv-text textarea").fill("你好，世界")
                page.locator("#ftv-synthesize").click()
                page.get_by_text("Chinese/Japanese letters this voice cannot read").first.wait_for(timeout=30_000)

                # Pasted text over the limit is kept whole (the browser used to cut it at 1,000 characters and the
                # app spoke the cut-off sentence), counted against the limit, and refused with a message.
                long_text = "Hello there, this is my voice. " * 40  # 1,240 characters
                page.locator("#ftv-text textarea").fill(long_text)
                assert page.locator("#ftv-text textarea").input_value() == long_text
                page.get_by_text(f"{len(long_text):,} / 1,000 characters").wait_for(timeout=10_000)
                assert "too long" in page.locator("#ftv-count").inner_text()
                page.locator("#ftv-synthesize").click()
                page.get_by_text(f"The text is too long ({len(long_text.strip())} characters").first.wait_for(
                    timeout=30_000
                )
                page.locator("#ftv-text textarea").fill("Short again.")
                page.get_by_text("12 / 1,000 characters").wait_for(timeout=10_000)

                # The Piper export sits next to the profile; the tiny model has no Piper phonemes, and says so.
                page.locator("#ftv-piper").get_by_text("Use this voice in Piper").click()
                page.locator("#ftv-export-piper").click()
                page.get_by_text("Piper's phoneme scheme").first.wait_for(timeout=30_000)
                page.screenshot(path=str(tmp_path / "ftv_app.png"), full_page=True)
                assert (tmp_path / "ftv_app.png").stat().st_size > 10_000
                assert off_machine == [], f"the page fetched from outside the machine: {off_machine}"
            finally:
                browser.close()
