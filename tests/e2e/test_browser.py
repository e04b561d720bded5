"""The web app in a real browser: Playwright drives Debian's Chromium against `python app.py` (tiny-demo mode).

Fill the form from a bundled example, preview the data, see bad input refused in the page, start training, watch
the loss plot fill and the job succeed, reload and still see the finished run. Screenshots go to
$PHI3_STUDIO_SCREENSHOTS (default: the test's temp folder); the README's come from this test.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from tests.appserver import running_app
from tests.hub.conftest import ACCOUNTS, ALICE_TOKEN
from tests.hub.server import HubServer
from trainer.runs import folder as rf

# One worker runs the whole module under xdist (`--dist loadfile`, pyproject.toml): its tests share one app, one
# Chromium and one run started in the app (module fixtures); split over two workers, each would start its own.
pytestmark = pytest.mark.slow
import playwright.sync_api as playwright  # noqa: E402 - a hard requirement (requirements-test.txt), never skipped

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1400, "height": 1500}
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def hub():
    """A local Hub-protocol server (user alice) that the app signs in to with HF_TOKEN (local mode)."""
    with HubServer(ACCOUNTS) as server:
        yield server


@pytest.fixture(scope="module")
def app_url(tiny_model_path, tmp_path_factory, hub):
    """The real app, started as a person would start it, on 127.0.0.1 with a fresh data dir, signed in to the Hub."""
    data_dir = tmp_path_factory.mktemp("app-data")
    env = {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(data_dir / "hf-home"),
        "HF_TOKEN": ALICE_TOKEN,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    with running_app(data_dir, env) as url:
        yield url, data_dir


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (the CI script installs it)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser):
    """Opens pages for one test and closes them when it ends: an open page's Runs tab asks the app for news every
    second, which would load the app and the browser while later tests train."""
    opened = []

    def new():
        page = browser.new_page(viewport=VIEWPORT)
        opened.append(page)
        return page

    yield new
    for page in opened:
        page.close()


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get("PHI3_STUDIO_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _pick(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option).click()


def _fill(page, name: str, value: str) -> None:
    box = page.locator(f"#field-{name} input, #field-{name} textarea").first
    box.fill(value)
    box.press("Tab")


def _form_page(new_page, app_url):
    """A fresh page on the Train tab with the Alpaca example and 30 steps filled in (`new_page`: a page factory)."""
    page = new_page()
    page.goto(app_url[0])
    _pick(page, "example", "Pirate persona: Alpaca (.json)")
    playwright.expect(page.locator("#field-dataset_name textarea, #field-dataset_name input").first).to_have_value(
        "examples/pirate_alpaca.json"
    )
    _fill(page, "max_steps", "30")
    return page


DRAWN = "document.querySelectorAll('#{} [aria-roledescription=\"{}\"]{}').length"


@pytest.fixture(scope="module")
def started_run(app_url, browser, hub):
    """One run started from the browser (pushing to alice's namespace), watched while it trains, then finished.

    What is seen while it trains is recorded for the tests: the live plot, the progress, the refresh latency.
    """
    expect = playwright.expect
    shots = Path(os.environ.get("PHI3_STUDIO_SCREENSHOTS") or app_url[1])
    page = _form_page(lambda: browser.new_page(viewport=VIEWPORT), app_url)
    page.locator("#advanced").get_by_text("Advanced settings").click()  # opening it leaves empty numbers empty
    max_rows = page.locator("#field-max_rows input, #field-max_rows textarea").first
    expect(max_rows).to_be_visible()
    expect(max_rows).to_have_value("")
    _fill(page, "name", "pirate e2e")
    _fill(page, "repo_id", "alice/pirate-lora")
    page.locator("#preview").click()  # the estimate comes with the preview: lengths, memory, time
    expect(page.locator("#estimate")).to_contain_text("memory", timeout=60_000)
    seen = {"estimate": page.locator("#estimate").inner_text()}
    page.screenshot(path=str(shots / "train-tab-estimate.png"), full_page=True)
    page.locator("#start").click()
    expect(page.locator("#run-status")).to_contain_text("Run #1", timeout=30_000)  # the Runs tab opens on it
    expect(page.locator("#run-status")).to_contain_text("pirate e2e")  # by the name given
    expect(page.locator("#run-picker input")).to_have_value(re.compile(r"#1 · .* · pirate e2e"))
    phases, deadline = [], time.time() + 180
    while time.time() < deadline and not phases[-1:] == ["training"]:  # the bar says what happens before step 1
        text = page.locator("#run-progress").inner_text()
        phase = re.match(r"(starting|preparing data|loading the model|evaluating before|training)", text)
        if phase and phase.group(1) not in phases:
            phases.append(phase.group(1))
        time.sleep(0.1)
    seen["phases"] = phases
    expect(page.locator("#run-progress")).to_contain_text("/ 30", timeout=180_000)
    line = DRAWN.format("loss-plot", "line mark", "[stroke]")
    page.wait_for_function(f"{line} >= 1 && {DRAWN.format('loss-plot', 'point', '')} >= 2", timeout=180_000)
    seen.update(running_status=page.locator("#run-status").inner_text(), latencies=_round_trips(app_url[0], "1"))
    page.screenshot(path=str(shots / "runs-tab-training.png"), full_page=True)
    expect(page.locator("#run-status")).to_contain_text("succeeded", timeout=240_000)
    expect(page.locator("#run-status")).to_contain_text("Published: alice/pirate-lora", timeout=60_000)
    expect(page.locator("#run-log textarea")).to_have_value(re.compile("pushed to"), timeout=30_000)
    log_scroll = "el => [el.scrollHeight, el.clientHeight, el.scrollTop]"
    seen["log_scroll"] = page.locator("#run-log textarea").evaluate(log_scroll)
    page.screenshot(path=str(shots / "runs-tab.png"), full_page=True)
    (shots / "ui-latency.json").write_text(json.dumps(seen["latencies"], indent=2))
    page.close()  # seen: the tests read only what was recorded (a page left open polls the app every second)
    yield seen


def test_preview_and_yaml_export(app_url, new_page, shots):
    expect = playwright.expect
    page = _form_page(new_page, app_url)
    expect(page.locator("#demo-banner")).to_contain_text("Offline demo mode")
    page.locator("#preview").click()
    expect(page.locator("#preview-summary")).to_contain_text("alpaca", timeout=30_000)
    expect(page.locator("#preview-summary")).to_contain_text("240 usable of 240")
    expect(page.locator("#preview-rows")).to_contain_text("<|assistant|>")
    page.locator("#export").click()
    expect(page.locator("#yaml-view")).to_contain_text("dataset_name: examples/pirate_alpaca.json", timeout=15_000)
    page.locator("#yaml-view .cm-scroller").evaluate("box => box.scrollTop = box.scrollHeight / 2")  # as a person
    expect(page.locator("#yaml-view")).to_contain_text("max_steps: 30")  # scrolls: the editor draws what is in view
    page.screenshot(path=str(shots / "train-tab.png"), full_page=True)


def test_a_bad_value_is_refused_next_to_its_field(app_url, new_page, shots):
    expect = playwright.expect
    page = _form_page(new_page, app_url)
    _fill(page, "learning_rate", "0")
    page.locator("#start").click()
    expect(page.locator("#form-errors")).to_contain_text("below the minimum", timeout=15_000)
    expect(page.locator("#field-learning_rate")).to_contain_text("⚠️")
    page.screenshot(path=str(shots / "train-tab-errors.png"), full_page=True)


def test_an_error_goes_when_its_field_changes_and_the_example_follows_the_dataset(app_url, new_page, tmp_path):
    """After a failed Start the error under Dataset and the list above Start name the old file; picking another
    dataset takes both away, and the Bundled example box always names the file the Dataset field holds."""
    expect = playwright.expect
    page = new_page()
    page.goto(app_url[0])
    expect(page.locator("#example input")).to_have_value("Pirate persona: chat messages (.jsonl)")  # on first load
    _fill(page, "dataset_name", str(tmp_path / "gone.jsonl"))
    expect(page.locator("#example input")).to_have_value("")  # not a bundled example any more
    page.locator("#start").click()
    expect(page.locator("#form-errors")).to_contain_text("gone.jsonl", timeout=30_000)
    expect(page.locator("#field-dataset_name")).to_contain_text("⚠️")
    _pick(page, "example", "Pirate persona: Alpaca (.json)")
    expect(page.locator("#form-errors")).not_to_contain_text("gone.jsonl", timeout=10_000)
    expect(page.locator("#field-dataset_name")).not_to_contain_text("⚠️")


def test_a_dataset_error_names_the_form_field_not_a_cli_flag(app_url, new_page, tmp_path):
    expect = playwright.expect
    page = _form_page(new_page, app_url)
    qa = tmp_path / "qa.csv"
    qa.write_text("question,answer\nWhat is rain?,Water.\n")
    _fill(page, "dataset_name", str(qa))
    page.locator("#preview").click()
    expect(page.locator("#preview-summary")).to_contain_text("set Column mapping to", timeout=30_000)
    assert "--map" not in page.locator("#preview-summary").inner_text()


def test_pushing_to_another_namespace_is_refused_before_start(app_url, new_page):
    expect = playwright.expect
    page = _form_page(new_page, app_url)
    _fill(page, "repo_id", "bob/pirate-lora")
    page.locator("#start").click()
    expect(page.locator("#form-errors")).to_contain_text("bob", timeout=30_000)
    expect(page.locator("#field-repo_id")).to_contain_text("⚠️")


def test_an_unsupported_upload_is_refused_and_nothing_typed_is_lost(app_url, new_page, tmp_path):
    expect = playwright.expect
    page = _form_page(new_page, app_url)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a dataset")
    page.locator("#upload input[type=file]").set_input_files(str(notes))
    expect(page.locator("#preview-summary")).to_contain_text(".txt files are not supported", timeout=15_000)
    expect(page.locator("#field-dataset_name textarea, #field-dataset_name input").first).to_have_value(
        "examples/pirate_alpaca.json"
    )


def test_the_path_through_a_first_run_has_no_dead_ends(started_run):
    """Advanced -> Preview (estimate) -> Start -> Runs: the estimate was shown, phases moved, the log followed."""
    assert "Memory: ✅ fits" in started_run["estimate"] and "Time: about" in started_run["estimate"], started_run[
        "estimate"
    ]
    phases = started_run["phases"]
    assert phases[-1] == "training" and len(phases) >= 2, phases  # at least one phase named before the first step
    assert phases == sorted(phases, key=list(rf.PHASES).index), phases  # in the order they happen
    height, visible, top = started_run["log_scroll"]
    assert height > visible and top + visible >= height - 4, started_run["log_scroll"]  # scrolled to the end


def test_a_started_run_is_shown_live_and_ends_published(started_run, app_url, new_page, hub):
    expect = playwright.expect
    assert "Run #1" in started_run["running_status"]
    page = new_page()
    page.goto(app_url[0])
    page.get_by_role("tab", name="Runs").click()  # a second tab (or a reload) reattaches to the same run
    expect(page.locator("#run-status")).to_contain_text("Run #1 · succeeded", timeout=30_000)
    expect(page.locator("#run-metrics")).to_contain_text("eval loss")
    expect(page.locator("#run-samples")).to_contain_text("Ahoy!")
    expect(page.locator("#run-progress")).to_contain_text("step 30 / 30")
    train_points, eval_points = DRAWN.format("loss-plot", "point", ""), DRAWN.format("eval-plot", "point", "")
    page.wait_for_function(f"{train_points} == 6 && {eval_points} == 3", timeout=30_000)  # steps 5..30; 0, 20, 30
    link = page.locator("#run-status a", has_text="alice/pirate-lora")
    assert link.get_attribute("href").endswith("/alice/pirate-lora")
    assert "adapter_model.safetensors" in hub.files("alice/pirate-lora")  # it really landed on the Hub


def test_compare_answers_one_prompt_with_base_and_tuned(started_run, app_url, new_page, shots):
    expect = playwright.expect
    page = new_page()
    page.goto(app_url[0])
    page.get_by_role("tab", name="Runs").click()
    expect(page.locator("#run-status")).to_contain_text("Run #1 · succeeded", timeout=30_000)
    page.locator("#chat-with-run").click()  # opens Compare on this run
    expect(page.locator("#compare-adapter input")).to_have_value(re.compile(r"run #1 · pirate e2e"), timeout=15_000)
    _pick(page, "compare-examples", "What is the moon?")  # example prompts come from the run's held-out rows
    expect(page.locator("#compare-prompt textarea")).to_have_value("What is the moon?")
    page.locator("#compare-prompt textarea").fill("Tell me about the moon.")
    page.locator("#compare-send").click()
    expect(page.locator("#tuned-chat")).to_contain_text("Ahoy!", timeout=120_000)
    expect(page.locator("#base-chat")).to_contain_text("The moon is", timeout=30_000)
    expect(page.locator("#compare-models")).to_contain_text("Left, base: tiny-phi3")  # the models are named
    expect(page.locator("#compare-models")).to_contain_text("Right, tuned: tiny-phi3 + adapter")
    page.screenshot(path=str(shots / "compare-tab.png"), full_page=True)
    assert page.locator("#base-chat button[aria-label='Clear']").first.is_hidden()  # no per-pane clear ...
    page.locator("#compare-clear").click()  # ... one Clear empties both
    expect(page.locator("#tuned-chat")).not_to_contain_text("Ahoy!", timeout=15_000)
    expect(page.locator("#base-chat")).not_to_contain_text("The moon is")


ERROR_BADGE = "[data-testid=status-tracker] .error"
"""Gradio's red "Error" badge, left on each output of an event whose handler raised."""


def test_a_refused_hub_adapter_is_a_message_and_the_panes_stay_usable(app_url, new_page, shots):
    """A repo the Hub does not have: a toast and a header that says so, no error badge on the panes or the prompt,
    the prompt kept; clearing the field takes the adapter out of the header."""
    expect = playwright.expect
    page = new_page()
    page.goto(app_url[0])
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-hub-id textarea, #compare-hub-id input").first.fill("alice/no-such-adapter")
    expect(page.locator("#compare-models")).to_contain_text("adapter alice/no-such-adapter", timeout=15_000)
    page.locator("#compare-prompt textarea").fill("Tell me about the moon.")
    page.locator("#compare-send").click()
    refusal = page.locator("[data-testid=toast-body]", has_text="alice/no-such-adapter: not a run folder")
    expect(refusal).to_contain_text("Warning", timeout=30_000)  # a warning toast with the reason, not an error
    expect(page.locator("#compare-models")).to_contain_text("Not compared", timeout=15_000)
    expect(page.locator("#compare-models")).not_to_contain_text("Right, tuned")  # no model named: none answered
    page.screenshot(path=str(shots / "compare-tab-refused.png"), full_page=True)
    for pane in ("#base-chat", "#tuned-chat", "#compare-prompt"):
        expect(page.locator(f"{pane} {ERROR_BADGE}")).to_have_count(0)
    expect(page.locator("#compare-prompt textarea")).to_have_value("Tell me about the moon.")  # kept, to try again
    expect(page.locator("#compare-prompt textarea")).to_be_editable()
    page.locator("#compare-hub-id textarea, #compare-hub-id input").first.fill("")  # back to the run picker's run
    expect(page.locator("#compare-models")).not_to_contain_text("alice/no-such-adapter", timeout=15_000)
    expect(page.locator("#compare-models")).not_to_contain_text("Not compared")


def test_one_click_downloads_the_adapter(started_run, app_url, new_page, tmp_path):
    import zipfile

    expect = playwright.expect
    page = new_page()
    page.goto(app_url[0])
    page.get_by_role("tab", name="Runs").click()
    expect(page.locator("#run-status")).to_contain_text("Run #1 · succeeded", timeout=30_000)
    expect(page.locator("#download-adapter")).to_be_enabled()
    with page.expect_download(timeout=30_000) as info:
        page.locator("#download-adapter").click()  # once
    assert info.value.suggested_filename == "run-1-adapter.zip"
    info.value.save_as(tmp_path / "adapter.zip")
    with zipfile.ZipFile(tmp_path / "adapter.zip") as archive:
        assert {"adapter_config.json", "adapter_model.safetensors"} <= set(archive.namelist())


@pytest.fixture(scope="module")
def evaluated_run(started_run, app_url, browser, tmp_path_factory):
    """The started run evaluated from the Runs tab (Evaluate, 4 held-out prompts), its results downloaded: what was
    seen, for the tests (the vote link's test needs an evaluated run whatever order the tests run in)."""
    import zipfile

    expect = playwright.expect
    shots = Path(os.environ.get("PHI3_STUDIO_SCREENSHOTS") or app_url[1])
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(app_url[0])
    page.get_by_role("tab", name="Runs").click()
    expect(page.locator("#run-status")).to_contain_text("Run #1 · succeeded", timeout=30_000)
    page.locator("#eval-section").get_by_text("Evaluate: base vs tuned").click()
    for name, value in (("eval-rows", "4"), ("eval-max-new-tokens", "20")):
        box = page.locator(f"#{name} input")
        box.fill(value)
        box.press("Tab")
    expect(page.locator("#eval-estimate")).to_contain_text("4 prompts × 2 models", timeout=15_000)
    page.locator("#eval-start").click()
    expect(page.locator("#eval-status")).to_contain_text("Evaluation on 4 prompts", timeout=180_000)
    expect(page.locator("#eval-summary")).to_contain_text("chrF", timeout=15_000)
    expect(page.locator("#eval-table")).to_contain_text("Ahoy!", timeout=15_000)
    expect(page.locator("#eval-chart img")).to_be_visible(timeout=15_000)  # drawn after the table: waited for
    seen = {"table": page.locator("#eval-table").inner_text(), "chart": page.locator("#eval-chart img").is_visible()}
    page.locator("#eval-section").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "runs-tab-evaluation.png"), full_page=True)
    with page.expect_download(timeout=30_000) as info:
        page.locator("#eval-download").click()
    archive_path = tmp_path_factory.mktemp("eval-zip") / "eval.zip"
    info.value.save_as(archive_path)
    with zipfile.ZipFile(archive_path) as archive:
        seen.update(names=set(archive.namelist()), summary=json.loads(archive.read("summary.json")))
    page.close()
    return seen


def test_evaluate_from_the_runs_tab_shows_both_answers_the_chart_and_downloads(evaluated_run):
    """Runs -> Evaluate: the estimate before Start, then the queued evaluation's table, chart and answers side by side,
    and its results as one download."""
    assert "Ahoy!" in evaluated_run["table"] and "The moon is" in evaluated_run["table"]  # both answers, side by side
    assert evaluated_run["chart"]
    assert evaluated_run["names"] == {"results.json", "summary.json", "chart.png"}
    assert evaluated_run["summary"]["prompts"] == 4


def test_blind_mode_hides_which_reply_is_tuned_until_the_vote(started_run, app_url, new_page, shots):
    """Compare -> Blind A/B: the panes are A and B, nothing in the page says which model answered where, and the
    vote reveals it."""
    expect = playwright.expect
    page = new_page()
    page.goto(app_url[0])
    page.get_by_role("tab", name="Compare").click()
    expect(page.locator("#compare-adapter input")).to_have_value(re.compile(r"run #1"), timeout=15_000)
    page.locator("#blind-switch input").check()
    expect(page.locator("#blind-panel")).to_be_visible()
    expect(page.locator("#base-chat")).to_be_hidden()  # the named panes and their header go
    page.locator("#blind-prompt textarea").fill("Tell me about the moon.")
    page.locator("#blind-send").click()
    expect(page.locator("#vote-a")).to_be_enabled(timeout=120_000)  # both replies are in
    panel = page.locator("#blind-panel").inner_html()
    assert "Ahoy" in panel and "The moon is" in panel  # both answers are shown ...
    assert not re.search(r"tuned|base|adapter", panel, re.I)  # ... and nothing says which is which
    ids = page.locator("#blind-panel [id]").evaluate_all("els => els.map(e => e.id)")
    assert not [i for i in ids if re.search(r"tuned|base", i, re.I)], ids
    page.screenshot(path=str(shots / "compare-blind.png"), full_page=True)
    page.locator("#vote-a").click()
    expect(page.locator("#blind-reveal")).to_contain_text("was the tuned model", timeout=15_000)
    expect(page.locator("#blind-reveal")).to_contain_text("1 votes by 1 person")
    expect(page.locator("#vote-a")).to_be_disabled()


def test_a_vote_link_opens_the_vote_tab_on_the_evaluations_answers(evaluated_run, app_url, new_page, shots):
    """Runs -> Share for blind votes -> the link opens the Vote tab: a prompt and answers A and B, then the reveal."""
    expect = playwright.expect
    page = new_page()
    page.goto(app_url[0])
    page.get_by_role("tab", name="Runs").click()
    expect(page.locator("#run-status")).to_contain_text("Run #1 · succeeded", timeout=30_000)
    page.locator("#eval-section").get_by_text("Evaluate: base vs tuned").click()
    expect(page.locator("#eval-status")).to_contain_text("Evaluation on", timeout=30_000)  # evaluated before
    page.locator("#share-votes").click()
    expect(page.locator("#share-link")).to_contain_text("?vote=", timeout=15_000)
    link = re.search(r"\?vote=[\w-]+", page.locator("#share-link").inner_text()).group(0)
    voter = new_page()
    voter.goto(app_url[0] + "/" + link)
    expect(voter.locator("#ballot-prompt")).to_contain_text("Prompt", timeout=30_000)
    expect(voter.locator("#ballot-progress")).to_contain_text("Prompt 1 of")
    answers = voter.locator("#ballot-a").inner_text() + voter.locator("#ballot-b").inner_text()
    assert "Ahoy" in answers and not re.search(r"tuned|base", answers, re.I)
    voter.screenshot(path=str(shots / "vote-tab.png"), full_page=True)
    voter.locator("#cast-tie").click()
    expect(voter.locator("#ballot-reveal")).to_contain_text("was the tuned model", timeout=15_000)
    voter.locator("#ballot-next").click()
    expect(voter.locator("#ballot-progress")).to_contain_text("Prompt 2 of", timeout=15_000)


def test_the_token_never_reaches_a_file(started_run, app_url):
    data_dir = app_url[1]
    leaks = [p for p in data_dir.rglob("*") if p.is_file() and ALICE_TOKEN.encode() in p.read_bytes()]
    assert leaks == []  # runs, logs, the job database, uploads, exports
    assert any(data_dir.rglob("jobs.sqlite")) and any(data_dir.rglob("log.txt"))


def test_the_server_stays_responsive_while_a_job_trains(started_run):
    latencies = started_run["latencies"]
    assert latencies["p95_ms"] < 2000, latencies


def _round_trips(url: str, job_id: str, n: int = 30) -> dict:
    """Time n refreshes of the Runs tab through the app's API while the worker trains (p50/p95 in ms).

    A connection reset under load (seen once on 2 busy cores) is retried and counted, not hidden: a server that
    stopped answering fails every call and the test.
    """
    import httpx
    from gradio_client import Client

    client = Client(url, verbose=False)
    times, resets = [], 0
    for _ in range(n):
        for _attempt in range(3):
            start = time.perf_counter()
            try:
                client.predict(job_id, {}, api_name="/refresh")
            except httpx.TransportError:
                resets += 1
                continue
            times.append(1000 * (time.perf_counter() - start))
            break
    assert len(times) == n and resets <= 3, (len(times), resets)
    times.sort()
    return {
        "n": n,
        "p50_ms": round(times[n // 2], 1),
        "p95_ms": round(times[int(0.95 * (n - 1))], 1),
        "max_ms": round(times[-1], 1),
        "connection_resets_retried": resets,
    }


def test_a_partly_broken_tool_call_dataset_is_explained_and_blocked_until_accepted(app_url, new_page, tmp_path, shots):
    """The preview explains the data (tool calls kept, template slots, the quality table), Start is blocked by the
    malformed share next to the checkbox that lifts it, and ticking it clears the block."""
    expect = playwright.expect
    page = _form_page(new_page, app_url)
    call = {"from": "function_call", "value": json.dumps({"name": "get_time", "arguments": {"city": "Oslo"}})}
    good = {
        "conversations": [
            {"from": "human", "value": "Time in Oslo?"},
            call,
            {"from": "observation", "value": "14:05"},
            {"from": "gpt", "value": "It is 14:05 in Oslo, says {{name}}."},
        ],
        "tools": json.dumps([{"name": "get_time", "parameters": {"type": "object"}}]),
    }
    broken = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "bot", "value": "Ho"}], "tools": "[]"}
    path = tmp_path / "tools.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [good] * 18 + [broken] * 2))
    _fill(page, "dataset_name", str(path))
    # the field's change events have been answered (the bundled-example picker follows it) before Preview: a change
    # event still in flight empties the preview it answers (seen once in .ci/run, on a loaded machine)
    expect(page.locator("#example input")).to_have_value("", timeout=30_000)
    page.locator("#preview").click()
    summary = page.locator("#preview-summary")
    expect(summary).to_contain_text("18 usable of 20", timeout=30_000)
    expect(summary).to_contain_text("Start is blocked")
    expect(summary).to_contain_text("tick Train on the usable rows")
    expect(summary).to_contain_text("unfilled template slots")
    expect(page.locator("#preview-rows")).to_contain_text("<|tool_call|>")
    page.screenshot(path=str(shots / "train-tab-data-checks.png"), full_page=True)
    page.locator("#start").click()
    expect(page.locator("#field-allow_malformed")).to_contain_text("⚠️", timeout=30_000)
    page.locator("#field-allow_malformed input").check()
    page.locator("#preview").click()
    expect(summary).not_to_contain_text("Start is blocked", timeout=30_000)


@pytest.mark.alone  # Start is timed on this machine, not beside another worker's training (tests/conftest.py)
def test_the_first_start_on_a_fresh_machine_answers_at_once_and_shows_the_demo_model_being_built(
    browser, tmp_path, shots
):
    """No demo model is built yet (an empty cache): Start still answers within 3 s, the Runs tab opens on the run,
    whose first phase is the build with its own progress; Cancel stops it and leaves nothing half built."""
    expect = playwright.expect
    cache = tmp_path / "empty-cache"
    data_dir = tmp_path / "app-data"
    data_dir.mkdir()
    with running_app(data_dir, {"PHI3_STUDIO_CACHE": str(cache)}) as url:
        page = browser.new_page(viewport=VIEWPORT)
        try:
            page.goto(url)
            expect(page.locator("#start")).to_be_visible()
            deadline = time.time() + 60  # a person reads the page first; meanwhile the app loads its libraries
            while "checks warmed up" not in (data_dir / "app.log").read_text() and time.time() < deadline:
                time.sleep(0.2)
            started = time.time()
            page.locator("#start").click()
            expect(page.locator("#run-picker input")).to_have_value(re.compile(r"^#1 "), timeout=10_000)
            answered = time.time() - started
            expect(page.locator("#run-progress")).to_contain_text(
                "building the demo model (first time only)… · warm-up step", timeout=60_000
            )
            page.screenshot(path=str(shots / "first-start-building.png"))
            page.locator("#cancel").click()
            expect(page.locator("#run-status")).to_contain_text("cancelled", timeout=30_000)
        finally:
            page.close()
    print(f"Start opened the run in {answered:.2f} s")
    # 2 s on the 2-core machine this was set on; the 2-core CI machine of 2026-12-07 runs the same suite 1.8x slower,
    # where Start measured 1.3-1.9 s alone and 2.1-2.5 s inside `.ci/run` (the demo model building beside it)
    assert answered < 3.0, f"Start took {answered:.1f} s to open the run"
    assert not list(cache.glob("tiny-phi3-*/config.json"))  # stopped, not finished behind the user's back
    log = next((data_dir / "runs").glob("*/log.txt")).read_text()
    assert "cancelled while the demo model was being built" in log


def test_export_gguf_from_the_runs_tab_estimates_shows_progress_and_downloads(
    started_run, app_url, new_page, shots, tmp_path
):
    """Runs -> Export GGUF: the size and time before it starts, the queued export's progress, then the file (made by
    llama.cpp's converter) in the list and downloaded in one click."""
    expect = playwright.expect
    page = new_page()
    page.goto(app_url[0])
    page.get_by_role("tab", name="Runs").click()
    expect(page.locator("#run-status")).to_contain_text("Run #1 · succeeded", timeout=30_000)
    page.locator("#gguf-section").get_by_text("Export GGUF: run it with").click()
    _pick(page, "gguf-type", "q8_0: close to the original")
    expect(page.locator("#gguf-estimate")).to_contain_text("q8_0: a file of about", timeout=15_000)
    expect(page.locator("#gguf-estimate")).to_contain_text(" MB, made in about")  # the tiny model: 9.8 MB
    page.locator("#gguf-start").click()
    expect(page.locator("#gguf-status")).to_contain_text("Exported", timeout=180_000)
    expect(page.locator("#gguf-status")).to_contain_text("-q8_0.gguf")
    page.locator("#gguf-section").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "runs-tab-gguf.png"), full_page=True)
    with page.expect_download(timeout=30_000) as info:
        page.locator("#gguf-download").click()
    assert info.value.suggested_filename.endswith("-q8_0.gguf")
    info.value.save_as(tmp_path / "model.gguf")
    assert (tmp_path / "model.gguf").read_bytes()[:4] == b"GGUF"
