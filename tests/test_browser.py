"""The web page end to end in real headless Chromium: load, upload a file, record, live mode over the WebSocket.

Chromium's fake media device plays a WAV file as the microphone, so record and live mode run on real
audio without hardware. Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium
chromium-driver``) and selenium (the ``test`` extra). Without them the tests skip, unless
``SER_HF_REQUIRE_BROWSER=1`` (set in CI), where they fail. Screenshots are kept in ``test-artifacts/``
(or ``$SER_HF_TEST_ARTIFACTS``); their paths are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("SER_HF_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SER_HF_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("SER_HF_TEST_ARTIFACTS") or Path(__file__).resolve().parents[1] / "test-artifacts")
FOUR = ["neutral", "happy", "sad", "angry"]
WAIT = 60  # seconds; generous because 2 shared cores also run the server and the browser


def _missing() -> str | None:
    for module in ("selenium", "fastapi", "uvicorn"):
        if importlib.util.find_spec(module) is None:
            return f"python package {module!r} is not installed (pip install 'ser-hf[test,serve]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            return f"{path} not found (apt-get install -y chromium chromium-driver)"
    return None


_REASON = _missing()
if _REASON:
    if os.environ.get("SER_HF_REQUIRE_BROWSER") == "1":
        pytest.fail(f"SER_HF_REQUIRE_BROWSER=1 but the browser test cannot run: {_REASON}", pytrace=False)
    pytest.skip(f"browser test skipped: {_REASON}", allow_module_level=True)

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from ser_hf.models.factory import build_model, save_checkpoint  # noqa: E402
from ser_hf.service.testing import running_server  # noqa: E402
from ser_hf.testing.corpora import voice_like  # noqa: E402
from ser_hf.testing.models import tiny_backbone  # noqa: E402

pytestmark = pytest.mark.slow


def _voice(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    return voice_like(seconds, 220.0, rate, seed=seed)  # a pitch and a level that move: a voice to adaptation


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("browser")
    model, extractor = build_model(tiny_backbone("wav2vec2", tmp / "backbone"), FOUR)
    paths = {"model": save_checkpoint(model, extractor, tmp / "model")}
    for name, seconds, rate in (("clip", 1.5, 16000), ("long", 12.0, 16000), ("microphone", 4.0, 48000)):
        paths[name] = tmp / f"{name}.wav"
        sf.write(paths[name], _voice(seconds, rate), rate, subtype="PCM_16")
    paths["text"] = tmp / "notes.txt"
    paths["text"].write_text("not audio\n")
    return paths


@pytest.fixture(scope="module")
def server(files):
    with running_server(files["model"], env={"OMP_NUM_THREADS": "1"}) as server:
        yield server


@pytest.fixture(scope="module")
def browser(files, tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required", "--use-fake-ui-for-media-stream",
                 "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={files['microphone']}",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}", "--window-size=1100,1400"):
        options.add_argument(flag)
    # An explicit driver path: selenium never tries to download one (there is no network).
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


def _screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"browser_{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def _bars(driver) -> dict[str, float]:
    return {bar.get_attribute("data-label"): float(bar.get_attribute("data-score"))
            for bar in driver.find_elements(By.CSS_SELECTOR, "#bars .bar")}


def _open(driver, server) -> None:
    driver.get(server.url + "/")
    WebDriverWait(driver, WAIT).until(lambda d: "neutral, happy, sad, angry" in d.find_element(By.ID, "model-info").text)


def _upload(driver, path: Path) -> None:
    driver.find_element(By.ID, "file").send_keys(str(path))
    driver.find_element(By.ID, "upload").click()


def test_page_upload_shows_bars_and_timeline(browser, server, files):
    _open(browser, server)
    assert browser.title.startswith("ser_hf")
    _upload(browser, files["clip"])
    WebDriverWait(browser, WAIT).until(lambda d: len(_bars(d)) == 4)
    bars = _bars(browser)
    assert sorted(bars) == sorted(FOUR) and sum(bars.values()) == pytest.approx(1.0, abs=1e-4)
    assert browser.find_element(By.ID, "result-label").text.split()[0] == max(bars, key=bars.get)
    assert "whole clip" in browser.find_element(By.ID, "status").text
    _upload(browser, files["long"])
    WebDriverWait(browser, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#timeline rect.segment"))
    segments = browser.find_elements(By.CSS_SELECTOR, "#timeline rect.segment")
    assert len(segments) == 10  # 12 s, window 3 s, hop 1 s
    assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline polyline")) == 4
    shot = _screenshot(browser, "upload_timeline")
    assert shot.stat().st_size > 10_000


def test_page_shows_clear_error_for_non_audio(browser, server, files):
    _open(browser, server)
    _upload(browser, files["text"])
    error = WebDriverWait(browser, WAIT).until(lambda d: d.find_element(By.ID, "error").text)
    assert error.startswith("415") and "could not be read as audio" in error


def test_record_from_fake_microphone(browser, server):
    _open(browser, server)
    browser.find_element(By.ID, "record").click()
    WebDriverWait(browser, WAIT).until(lambda d: float((d.find_element(By.ID, "record-time").text or "0 s").split()[0]) >= 1.0)
    browser.find_element(By.ID, "record-stop").click()
    WebDriverWait(browser, WAIT).until(lambda d: "whole clip" in d.find_element(By.ID, "status").text)
    assert len(_bars(browser)) == 4 and "recording" in browser.find_element(By.ID, "result-source").text
    assert not browser.find_element(By.ID, "error").text


def test_live_mode_streams_microphone_over_websocket(browser, server):
    _open(browser, server)
    browser.find_element(By.ID, "live-start").click()
    # The first window needs 3 s of audio, the next ones 1 s each: real time, since the microphone is live.
    WebDriverWait(browser, WAIT).until(lambda d: int(d.find_element(By.ID, "live-count").text) >= 3)
    bars = _bars(browser)
    assert sorted(bars) == sorted(FOUR) and "live" in browser.find_element(By.ID, "result-source").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline rect.segment")) >= 3
    _screenshot(browser, "live")
    browser.find_element(By.ID, "live-stop").click()
    WebDriverWait(browser, WAIT).until(lambda d: "Live stream ended" in d.find_element(By.ID, "status").text)
    assert not browser.find_element(By.ID, "error").text
    logs = " ".join(entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE")
    assert "app.js" not in logs, logs  # no JavaScript errors from the page


def test_server_log_has_no_tracebacks(server, browser):
    # Runs last in this module: whatever the page did, the server never failed.
    assert "Traceback" not in server.output()


KEY = "browser-test-key-0123456789"


@pytest.fixture(scope="module")
def keyed_server(files):
    with running_server(files["model"], env={"OMP_NUM_THREADS": "1", "SER_HF_API_KEY": KEY}) as server:
        yield server


def test_page_asks_for_the_api_key_and_uses_it_for_uploads_and_live_mode(browser, keyed_server, files):
    browser.get(keyed_server.url + "/")
    WebDriverWait(browser, WAIT).until(lambda d: d.find_element(By.ID, "key-panel").is_displayed())
    browser.find_element(By.ID, "key").send_keys("a-wrong-key-123")
    browser.find_element(By.ID, "key-save").click()
    _upload(browser, files["clip"])
    WebDriverWait(browser, WAIT).until(lambda d: d.find_element(By.ID, "key-panel").is_displayed())
    assert "API key is wrong" in browser.find_element(By.ID, "key-message").text and not _bars(browser)
    browser.find_element(By.ID, "key").send_keys(KEY)
    browser.find_element(By.ID, "key-save").click()
    _upload(browser, files["clip"])
    WebDriverWait(browser, WAIT).until(lambda d: len(_bars(d)) == 4)
    assert browser.execute_script("return sessionStorage.getItem('ser-hf-api-key')") == KEY
    browser.find_element(By.ID, "live-start").click()  # the key goes to /stream as a subprotocol
    WebDriverWait(browser, WAIT).until(lambda d: int(d.find_element(By.ID, "live-count").text) >= 1)
    browser.find_element(By.ID, "live-stop").click()
    WebDriverWait(browser, WAIT).until(lambda d: "Live stream ended" in d.find_element(By.ID, "status").text)
    assert not browser.find_element(By.ID, "error").text
    assert "Traceback" not in keyed_server.output()


@pytest.fixture(scope="module")
def adaptive_server(tiny_adaptive_checkpoint):
    with running_server(tiny_adaptive_checkpoint[1], env={"OMP_NUM_THREADS": "1"}) as server:
        yield server


def test_live_mode_adapts_to_the_voice_on_a_model_that_can(browser, adaptive_server, server):
    browser.get(adaptive_server.url + "/")
    WebDriverWait(browser, WAIT).until(lambda d: d.find_element(By.ID, "live-adapt-option").is_displayed())
    assert browser.find_element(By.ID, "live-adapt").is_selected()  # on by default where the model can adapt
    browser.find_element(By.ID, "live-start").click()
    # Online adaptation starts once 3 voiced windows are heard (3 s, then one window a second).
    WebDriverWait(browser, WAIT).until(lambda d: "adapted to your voice" in d.find_element(By.ID, "status").text)
    browser.find_element(By.ID, "live-stop").click()
    WebDriverWait(browser, WAIT).until(lambda d: "Live stream ended" in d.find_element(By.ID, "status").text)
    assert not browser.find_element(By.ID, "error").text
    _open(browser, server)  # a model without speaker adaptation: no such option
    assert not browser.find_element(By.ID, "live-adapt-option").is_displayed()
