"""The web page in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`, driven by
selenium) picks the replica, renders a script, and the streamed video plays. The app runs without a token
here, so this is also the auth-off path over HTTP."""

from __future__ import annotations

import shutil
import time

import pytest

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs chromium and chromium-driver (make debs)")


@pytest.fixture(scope="module")
def server(ray_cluster, tiny_replica, tmp_path_factory):
    from ray import serve

    from render.serve_config import ServeConfig
    from tests.render.serving import serve_replicas

    cfg = ServeConfig(cache_size=1, max_renderers=1, renderer_cpus=1)
    yield serve_replicas(tiny_replica, tmp_path_factory.mktemp("serve"), ("alice",), cfg)
    serve.shutdown()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--mute-audio",
                 "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    yield driver
    driver.quit()


def wait_until(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def test_the_page_streams_a_video_that_plays(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#replica option"), 30, "the replica list")
    browser.find_element(By.ID, "text").clear()
    browser.find_element(By.ID, "text").send_keys("Hello from the browser. The video plays as it streams.")
    browser.find_element(By.ID, "render").click()
    state = lambda: browser.execute_script("return window.replicaState")  # noqa: E731
    wait_until(lambda: state()["phase"] in ("done", "error"), 90, "the stream to end")
    assert state()["error"] is None and state()["bytes"] > 0 and state()["mode"] == "mediasource"
    video = lambda: browser.execute_script(  # noqa: E731
        "const v = document.getElementById('video');"
        "return {ready: v.readyState, time: v.currentTime, error: v.error && v.error.message,"
        "        played: v.played.length ? v.played.end(0) : 0, duration: v.duration};")
    wait_until(lambda: video()["played"] > 0.2, 30, "the video to play")
    assert video()["error"] is None and video()["ready"] >= 2
    assert browser.find_element(By.ID, "download").get_attribute("href").startswith("blob:")
