"""The dashboard in a real browser: Debian's Chromium, headless, driven by Selenium through Debian's
chromedriver (both installed by `make install`; docs/choices.md says why).

On the tiny study's dashboard: the index opens from file:// with no console error, its table has
a row per latent and re-sorts when a header is clicked, a latent page shows highlighted tokens
and its plots; against a running `tooldiff serve --dashboard`, the live panel shows the latent at
every token of a typed prompt and moving the dial changes the answer. One browser and one server
for the module. Screenshots go to $TOOLDIFF_SCREENSHOTS (default: a temporary directory).
"""

import json
import os
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# Headless, and nothing that reaches for the network: this machine's network is closed.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic", "--window-size=1400,1000")
WAIT_S = 60
PROMPT = "What is the weather in Lima?"


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    out = Path(os.environ.get("TOOLDIFF_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are missing: `make install` installs Debian's chromium and "
                    "chromium-driver")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers online
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, condition, timeout: float = WAIT_S):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def console_errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver, path: Path) -> None:
    driver.execute_script("window.scrollTo(0, 0)")
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, min(max(height, 800), 8000))
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)


def column(driver, name: str) -> list:
    from selenium.webdriver.common.by import By

    heads = [th.get_attribute("data-col") for th in driver.find_elements(By.CSS_SELECTOR, "#latents thead th")]
    i = heads.index(name)
    cells = driver.execute_script(
        "return [...document.querySelectorAll('#latents tbody tr')].map(r => r.children[arguments[0]].textContent)", i)
    return [None if c == "–" else float(c) for c in cells]


def test_the_index_opens_from_file_with_a_row_per_latent_and_sorts(tiny_dashboard, browser, shots):
    from selenium.webdriver.common.by import By

    browser.get((tiny_dashboard.dir / "index.html").as_uri())
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#latents tbody tr"))
    assert console_errors(browser) == []
    n_latents = sum(len(ranking.latents) for ranking in tiny_dashboard.study.summary.rankings.values())
    n_latents += sum(len(r.latents) for r in tiny_dashboard.positive_summary.rankings.values())
    rows = browser.find_elements(By.CSS_SELECTOR, "#latents tbody tr")
    assert len(rows) == n_latents
    assert browser.find_element(By.ID, "latent-count").text == f"{n_latents} of {n_latents} latents"
    assert len(browser.find_elements(By.CSS_SELECTOR, ".crosscoder svg.plot")) >= 4  # Δ histogram, loss curve

    before = [v for v in column(browser, "strict_auroc") if v is not None]
    assert before != sorted(before, reverse=True)  # by rank, crosscoders interleaved: not yet by this column
    header = browser.find_element(By.CSS_SELECTOR, '#latents th[data-col="strict_auroc"]')
    header.click()
    values = [v for v in column(browser, "strict_auroc") if v is not None]
    assert header.get_attribute("aria-sort") == "descending" and values == sorted(values, reverse=True)
    header.click()
    values = [v for v in column(browser, "strict_auroc") if v is not None]
    assert header.get_attribute("aria-sort") == "ascending" and values == sorted(values)

    screenshot(browser, shots / "index.png")

    cols, data = tiny_dashboard.data("index.html")["columns"], tiny_dashboard.data("index.html")["rows"]
    fire = sorted(r[cols.index("fire_call")] for r in data if r[cols.index("fire_call")] is not None)
    threshold = fire[len(fire) // 2]
    query = browser.find_element(By.ID, "f-query")
    for terms, keep in ((f"fire_call>{threshold}", lambda r: (r[cols.index("fire_call")] or 0) > threshold),
                        ("a_excl", lambda r: "a_excl" in r[cols.index("group")])):
        query.clear()
        query.send_keys(terms)
        shown = len(browser.find_elements(By.CSS_SELECTOR, "#latents tbody tr"))
        assert 0 < shown == sum(map(keep, data)) < n_latents, terms


def test_a_latent_page_shows_highlighted_tokens_and_its_plots(tiny_dashboard, browser, shots):
    from selenium.webdriver.common.by import By

    top = tiny_dashboard.study.summary.rankings["dfc"].latents[0].latent
    browser.get((tiny_dashboard.dir / "latents" / f"main-dfc-{top}.html").as_uri())
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".example"))
    assert console_errors(browser) == []
    lit = browser.find_elements(By.CSS_SELECTOR, ".example .tok.on")
    assert lit and all(float(t.get_attribute("data-act")) > 0 for t in lit[:20])
    assert "background" in lit[0].get_attribute("style")
    assert browser.find_elements(By.CSS_SELECTOR, "svg.hist")  # by request kind, and the logit histograms
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.lens")) == 4  # promoted / suppressed, both models
    page = tiny_dashboard.data(f"latents/main-dfc-{top}.html")
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.forest")) == 2 * len(page["conditions"])
    screenshot(browser, shots / "latent.png")


@pytest.fixture(scope="module")
def server(tiny_dashboard, serve_cli, tmp_path_factory):
    """`tooldiff serve` on the tiny RL model and the study's dfc crosscoder, with the dashboard."""
    from tooldiff.organism import load_organism

    rl = load_organism(tiny_dashboard.study.organism, models=False).rl_path
    args = ["--model", rl, "--model-name", "rl", "--crosscoder", tiny_dashboard.study.crosscoders / "dfc",
            "--prompt-format", "organism", "--dashboard", tiny_dashboard.dir, "--threads", "1"]
    with serve_cli(args, tmp_path_factory.mktemp("serve") / "server.log") as base:
        yield base


def answer(base: str, tools: list, steering: list) -> str:
    """What the live panel shows of an answer: its text and its parsed calls."""
    body = {"model": "rl", "messages": [{"role": "user", "content": PROMPT}], "tools": tools, "temperature": 0,
            "max_tokens": 48, "steering": steering}
    msg = httpx.post(base + "/v1/chat/completions", json=body, timeout=60).json()["choices"][0]["message"]
    calls = [c["function"]["name"] + "(" + c["function"]["arguments"] + ")" for c in msg.get("tool_calls") or []]
    return (msg["content"] or "") + "|" + ";".join(calls)


def dial_that_moves(base: str, tools: list, latents: list[int], dose: float) -> int:
    """The first latent whose `add` at the dial's end really changes the tiny model's answer."""
    plain = answer(base, tools, [])
    for latent in latents:
        if answer(base, tools, [{"op": "add", "feature": [latent], "dose": dose}]) != plain:
            return latent
    pytest.fail(f"no latent of {latents} changes the answer at dose {dose}")


def test_the_live_panel_reads_a_typed_prompt_and_the_dial_changes_the_answer(tiny_dashboard, browser, server, shots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    tools = tiny_dashboard.data("live.html")["examples"][0]["tools"]
    listing = httpx.get(server + "/v1/steering/features?limit=1000").json()
    assert listing["crosscoder"] == "dfc"
    steerable = [row["latent"] for row in listing["data"] if row["steerable"]][:12]
    latent = dial_that_moves(server, tools, steerable, dose=3.0)  # 3 = the dial's end for `add` (live.js)

    browser.get(f"{server}/dashboard/live.html?crosscoder=dfc&latent={latent}")
    wait(browser, lambda d: d.find_element(By.ID, "status").get_attribute("data-ready") == "1")
    message = browser.find_element(By.ID, "message")
    message.clear()
    message.send_keys(PROMPT)
    browser.find_element(By.ID, "run").click()
    ready = lambda i: lambda d: d.find_element(By.ID, i).get_attribute("data-state") == "ready"  # noqa: E731
    for box in ("tokens", "answer-off", "answer-on"):
        wait(browser, ready(box))
    read = httpx.post(server + "/v1/steering/activations", json={
        "model": "rl", "messages": [{"role": "user", "content": PROMPT}], "tools": tools, "features": [latent]}).json()
    spans = browser.find_elements(By.CSS_SELECTOR, "#tokens .tok")
    assert [s.text for s in spans] == [t.replace("\n", "\u21b5") for t in read["tokens"]]
    assert [float(s.get_attribute("data-act")) for s in spans] == pytest.approx(read["features"][0]["activations"])
    off = browser.find_element(By.ID, "answer-off").get_attribute("data-text")
    assert off == answer(server, tools, [])
    assert browser.find_element(By.ID, "answer-on").get_attribute("data-text") == off  # dose 0 changes nothing

    knob = browser.find_element(By.ID, "knob")
    knob.send_keys(Keys.END)
    wait(browser, lambda d: d.find_element(By.ID, "answer-on").get_attribute("data-knob") == knob.get_attribute("value")
         and d.find_element(By.ID, "answer-on").get_attribute("data-state") == "ready")
    assert knob.get_attribute("value") == "3"
    moved = browser.find_element(By.ID, "answer-on").get_attribute("data-text")
    assert moved != off and moved == answer(server, tools, [{"op": "add", "feature": [latent], "dose": 3.0}])
    assert console_errors(browser) == []
    screenshot(browser, shots / "live.png")


def test_the_live_panel_from_file_says_it_needs_the_server(tiny_dashboard, browser):
    from selenium.webdriver.common.by import By

    browser.get((tiny_dashboard.dir / "live.html").as_uri())
    note = wait(browser, lambda d: d.find_element(By.ID, "offline"))
    assert "tooldiff serve" in note.text and console_errors(browser) == []
    assert json.loads(json.dumps(tiny_dashboard.data("live.html")))["examples"]  # prompts to start from
