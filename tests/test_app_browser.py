"""The web studio in a real headless Chromium (Debian ``chromium`` + ``chromium-driver``, Selenium).

Starts ``python -m flap.app`` on a free loopback port in an empty folder, then, as a user would:
feeds a text file as the portrait and finds the error on the page; uploads the bundled portrait and
speech, picks ``nod``, sees the mesh preview and the plot; types an invalid keyframe row and finds
its error; fixes it, switches to ``replace``, generates one second on ``checkpoints/flap_tiny_demo``
with two steps, and checks the page's video (plays, expected duration), the coefficient download
(the keyframe's pitch ±0.5°), that the page fetched nothing off the machine, that nothing was
written outside the app's output folder (working folder, package, an empty HOME), and that a
screenshot of the page is not blank.

Set ``FLAP_APP_SCREENSHOT=docs/images/app.png`` to keep the screenshot (the README's picture).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from flap.flame.coeffs import HeadCoeffs

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "demo"
CHECKPOINT = ROOT / "checkpoints" / "flap_tiny_demo"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SECONDS = 1.0  # generated length
KEY_FRAME, KEY_PITCH = 8, 12.0  # nod's keyframe t = 0.32 s at 25 fps, pitch 12 degrees


def _require(condition: bool, what: str) -> None:
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} (CI=true: .ci/run installs it; tests must not pass by skipping)")
    pytest.skip(what)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float, what: str, interval: float = 0.3):
    """Poll ``condition()`` until it returns a truthy value (exceptions count as falsy)."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - the page is still changing
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last!r})")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _require(CHECKPOINT.joinpath("model_index.json").is_file(), f"demo checkpoint missing: {CHECKPOINT}")
    _require(importlib.util.find_spec("gradio") is not None, 'gradio not installed (pip install -e ".[app]")')
    work = tmp_path_factory.mktemp("app_cwd")
    out = work / "out"
    port = _free_port()
    home = tmp_path_factory.mktemp("app_home")  # an empty HOME: the app must not write there either
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "GRADIO_", "MPLCONFIGDIR"))},
           "HOME": str(home), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    log = open(work.parent / "app.log", "w")  # outside the app's folder, so the cwd check sees only the app's files
    proc = subprocess.Popen([sys.executable, "-m", "flap.app", "--port", str(port), "--output-dir", "out",
                             "--checkpoints", str(CHECKPOINT), "--device", "cpu"],
                            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    package_files = sorted(p for p in (ROOT / "flap").rglob("*") if "__pycache__" not in p.parts)
    try:
        wait_for(lambda: proc.poll() is None and urllib.request.urlopen(url, timeout=5).status == 200, 180,
                 "the app to serve")
        yield {"url": url, "out": out, "cwd": work, "proc": proc, "log": work.parent / "app.log",
               "package_files": package_files, "home": home}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    _require(importlib.util.find_spec("selenium") is not None, 'selenium not installed (pip install -e ".[dev]")')
    _require(Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(),
             "Chromium / ChromeDriver not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required", "--window-size=1600,1300",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium_profile')}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


# ------------------------------------------------------------------------------------------ page helpers
def css(driver, selector, timeout: float = 15):
    """The element matching ``selector``, waiting for it (Gradio renders some parts lazily)."""
    from selenium.webdriver.common.by import By

    return wait_for(lambda: driver.find_element(By.CSS_SELECTOR, selector), timeout, selector)


def text_of(driver, selector) -> str:
    return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.innerText : ''",
                                 selector)


def toasts(driver) -> str:
    return driver.execute_script("return [...document.querySelectorAll('.toast-body')].map(e => e.innerText)"
                                 ".join('\\n')")


def media_src(driver, selector) -> str | None:
    return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.src : null", selector)


def upload(driver, box: str, path: Path) -> None:
    css(driver, f"#{box} input[type=file]").send_keys(str(path))


def choose(driver, box: str, option: str) -> None:
    from selenium.webdriver.common.by import By

    css(driver, f"#{box} input").click()
    wait_for(lambda: [o for o in driver.find_elements(By.CSS_SELECTOR, "li[role=option]")
                      if o.get_attribute("aria-label") == option], 10, f"option {option}")[0].click()


def set_number(driver, selector: str, value, check: str | None = None) -> None:
    """Type ``value`` into a number field (retyped until it shows it, and ``check``'s input agrees)."""
    from selenium.webdriver.common.keys import Keys

    def typed() -> bool:
        field = css(driver, selector)
        field.click()
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(str(value), Keys.TAB)
        time.sleep(0.3)
        shown = [css(driver, s).get_attribute("value") for s in (selector, check or selector)]
        return all(float(v) == float(value) for v in shown)

    wait_for(typed, 30, f"{selector} to read {value}", interval=0.5)


def edit_cell(driver, row: int, col: int, value) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(driver).double_click(css(driver, f"#flap-table [data-testid=cell-{row}-{col}]")).perform()
    editor = wait_for(lambda: css(driver, "#flap-table textarea"), 10, "the cell editor")
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys(str(value), Keys.ENTER)


def click_label(driver, box: str, text: str) -> None:
    from selenium.webdriver.common.by import By

    [e for e in driver.find_elements(By.CSS_SELECTOR, f"#{box} label") if e.text.strip() == text][0].click()


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def not_blank(png: Path) -> bool:
    """Second look at a screenshot: real content, not one flat colour (std > 20 grey levels, > 5% ink)."""
    from PIL import Image

    grey = np.asarray(Image.open(png).convert("L"), dtype=np.float64)
    background = np.median(grey)
    return grey.std() > 20 and np.mean(np.abs(grey - background) > 40) > 0.05


# ------------------------------------------------------------------------------------------ the test
def test_studio_in_a_real_browser(server, browser, tmp_path):
    driver, url = browser, server["url"]

    # --- a text file as the portrait: an error on the page, the app keeps serving
    driver.get(url)
    wait_for(lambda: css(driver, "#flap-generate"), 60, "the page")
    upload(driver, "flap-portrait", DEMO / "speech.LICENSE.txt")
    wait_for(lambda: "Invalid file type" in toasts(driver), 30, "the invalid-file error")
    fake = tmp_path / "not_an_image.png"
    fake.write_text("this is text, not a portrait\n")
    upload(driver, "flap-portrait", fake)
    upload(driver, "flap-speech", DEMO / "speech.wav")
    time.sleep(2)
    css(driver, "#flap-generate").click()
    wait_for(lambda: "not_an_image.png': cannot decode it as an image" in text_of(driver, "#flap-status"), 120,
             "the not-an-image error")
    assert urllib.request.urlopen(url, timeout=10).status == 200 and server["proc"].poll() is None

    # --- the happy path on a fresh page
    driver.get(url)
    wait_for(lambda: css(driver, "#flap-generate"), 60, "the page")
    upload(driver, "flap-portrait", DEMO / "portrait.png")
    upload(driver, "flap-speech", DEMO / "speech.wav")
    wait_for(lambda: media_src(driver, "#flap-speech audio") or text_of(driver, "#flap-speech").count("0:0") >= 1,
             30, "the speech upload")
    choose(driver, "flap-pose", "nod")
    wait_for(lambda: text_of(driver, "#flap-table [data-testid=cell-5-0]").strip() == "3"
             and text_of(driver, "#flap-table [data-testid=cell-1-1]").strip() == "12", 30, "nod's keyframes in the table")
    wait_for(lambda: "Preview: 100 frames" in text_of(driver, "#flap-preview-info")
             and media_src(driver, "#flap-preview-video video") and media_src(driver, "#flap-preview-plot img"),
             240, "the mesh preview and the plot of nod")
    plot = fetch(media_src(driver, "#flap-preview-plot img"))
    assert plot[:4] == b"\x89PNG" and len(plot) > 5000

    # --- an invalid keyframe row: the message names the row; then fix it
    edit_cell(driver, 1, 1, 400)
    wait_for(lambda: "pose table row 2: key 'pitch' = 400 is outside" in text_of(driver, "#flap-preview-info"), 60,
             "the invalid-row error")
    assert urllib.request.urlopen(url, timeout=10).status == 200
    edit_cell(driver, 1, 1, KEY_PITCH)
    click_label(driver, "flap-mode", "replace")
    set_number(driver, "#flap-seconds input", SECONDS)
    old_preview = media_src(driver, "#flap-preview-video video")
    wait_for(lambda: "Preview: 25 frames" in text_of(driver, "#flap-preview-info")
             and media_src(driver, "#flap-preview-video video") != old_preview, 120, "the updated preview")
    assert f"pitch +0…+{KEY_PITCH:.0f}°" in text_of(driver, "#flap-preview-info")

    # --- generate with few steps
    from selenium.webdriver.common.by import By

    [b for b in driver.find_elements(By.CSS_SELECTOR, "button") if b.text.strip().startswith("Advanced")][0].click()
    set_number(driver, "#flap-steps input[type=number]", 2, check="#flap-steps input[type=range]")
    css(driver, "#flap-generate").click()
    # the progress bar counts denoising windows x steps (the pipeline's tqdm bar, tracked by Gradio):
    # 2 windows of 16 frames x 1 step (2 steps at strength 0.5) -> 0 %, 50 %, ...
    seen: set[str] = set()

    def finished() -> bool:
        seen.update(line.strip() for line in driver.execute_script("return document.body.innerText").splitlines()
                    if "FLAP denoising" in line)
        return "Done:" in text_of(driver, "#flap-status") or "Error" in text_of(driver, "#flap-status")

    wait_for(finished, 900, "the generation", interval=0.1)
    status = text_of(driver, "#flap-status")
    assert "Done: 25 frames (1.00 s at 25 fps), 2 steps" in status, status + "\n" + server["log"].read_text()[-3000:]
    assert {"FLAP denoising - 0.0%", "FLAP denoising - 50.0%"} <= seen, seen
    src = wait_for(lambda: media_src(driver, "#flap-result-video video"), 60, "the result video")
    duration = driver.execute_async_script("""
        const [video, done] = [document.querySelector('#flap-result-video video'), arguments[arguments.length - 1]];
        const ready = () => video.play().then(() => setTimeout(() => done({duration: video.duration,
            time: video.currentTime, error: video.error && video.error.code}), 1500)).catch(e => done({error: String(e)}));
        video.muted = true;
        if (video.readyState >= 1) ready(); else video.addEventListener('loadedmetadata', ready, {once: true});
    """)
    assert duration.get("error") is None, duration
    assert duration["duration"] == pytest.approx(SECONDS, abs=0.1) and duration["time"] > 0, duration

    links = wait_for(lambda: driver.execute_script(
        "return [...document.querySelectorAll('#flap-downloads a')].map(a => a.href)"), 30, "the downloads")
    names = sorted(Path(urllib.request.url2pathname(link.split("file=")[-1])).name for link in set(links))
    assert names == ["portrait.coeffs.npz", "portrait.mp4", "pose.yaml"], names
    coeffs_file = tmp_path / "download.coeffs.npz"
    coeffs_file.write_bytes(fetch([link for link in links if link.endswith(".coeffs.npz")][0]))
    coeffs = HeadCoeffs.load(coeffs_file)
    assert coeffs.num_frames == 25
    assert coeffs.pose_degrees()[KEY_FRAME, 0].item() == pytest.approx(KEY_PITCH, abs=0.5)
    assert fetch(src)[4:8] == b"ftyp"  # the page's video is an mp4

    # --- nothing fetched off the machine, nothing written outside the output folder
    remote = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)"
                                   ".filter(n => !n.startsWith(location.origin) && !n.startsWith('blob:')"
                                   " && !n.startsWith('data:'))")
    assert remote == []
    assert sorted(p.name for p in server["cwd"].iterdir()) == ["out"]
    assert sorted(server["home"].rglob("*")) == []
    assert sorted(p for p in (ROOT / "flap").rglob("*") if "__pycache__" not in p.parts) == server["package_files"]

    # --- a screenshot of the whole page, checked again from the file
    height = driver.execute_script("return Math.max(document.body.scrollHeight, "
                                   "document.documentElement.scrollHeight, document.querySelector('.gradio-container')"
                                   ".scrollHeight)")
    driver.set_window_size(1600, min(max(height + 200, 900), 4000))
    driver.execute_script("window.scrollTo(0, 0)")
    time.sleep(1)
    shot = tmp_path / "app.png"
    assert driver.save_screenshot(str(shot))
    assert not_blank(shot)
    if os.environ.get("FLAP_APP_SCREENSHOT"):
        keep = Path(os.environ["FLAP_APP_SCREENSHOT"])
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, keep)
