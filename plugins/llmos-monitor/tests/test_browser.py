"""The dashboard end to end: `llmos ui` in its own process, driven by a real headless
Chromium (Debian's /usr/bin/chromium through Playwright; no browser download)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("LLMOS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LLMOS = str(Path(sys.executable).parent / "llmos")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_index(root: Path) -> None:
    folder = root / "plugins" / "llmos-hello"
    (folder / "versions").mkdir(parents=True)
    (root / "maintainers.toml").write_text("")
    (folder / "README.md").write_text("# hello\n")
    (folder / "plugin.toml").write_text(
        """name = "llmos-hello"
summary = "Says hello from every stage"
license = "MIT"
authors = [{ name = "Ada", handle = "ada" }]
maintainers = [{ handle = "ada" }]
urls = { repository = "https://example.org/hello" }
stages = ["data"]
api_versions = [1]
security_contact = "ada@example.org"
added = 2026-01-01
"""
    )


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory, h: Any) -> Iterator[dict[str, Any]]:
    """A home with models and runs, and `llmos ui` serving it from a subprocess."""
    helpers = h
    home = tmp_path_factory.mktemp("ui-home")
    index = tmp_path_factory.mktemp("ui-index")
    _write_index(index)
    from llmos.registry import open_registry

    reg = open_registry(url=f"sqlite:///{home / 'llmos.db'}", home=home)
    helpers.make_models(reg, tmp_path_factory.mktemp("ui-models"))
    done = reg.create_run("monitored", {"steps": 12, "note": "<script>window.pwned = 1</script> → ok"}, {})
    rows = [(k, st, n, v, time.time()) for k, st, n, v in helpers.expected_points(12)]
    rows += [("system", i, "cpu_percent", 10.0 + i, time.time()) for i in range(5)]
    reg.log_run_metrics(done, rows)
    reg.log_run_stage(done, "train", "optimizer.fake-train", "completed", 1.25)
    reg.finish_run(done)
    # a second finished run that made tiny:2, for the compare view
    other = reg.create_run("monitored", {"steps": 6}, {})
    reg.log_run_metrics(other, [("train", st, "loss", 2.0 / st, time.time()) for st in range(1, 7)])
    reg.finish_run(other, summary={"versions": ["tiny:2"], "metrics": {"val_ppl": 31.25}})
    # eval results per task, and promotion decisions as `llmos deploy promote --require` records them
    reg.log_metrics("tiny:2", {"docstrings-mc/acc": 0.75, "docstrings-mc/acc_norm": 0.5})
    for kind, current in (("deploy.refused", "tiny:1"), ("deploy.promoted", "tiny:1")):
        reg.record_event(kind, "tiny:2", {"alias": "production", "current": current,
                                          "rule": "val_ppl <= current.val_ppl",
                                          "checks": [{"detail": "val_ppl <= current.val_ppl holds (tiny:2 val_ppl = "
                                                                "31.25, current tiny:1 val_ppl = 40.5)"}]})
    live = reg.create_run("monitored", {"steps": 100}, {})
    reg.log_run_metrics(live, [("train", s, "loss", helpers.train_loss(s), time.time()) for s in range(1, 6)])

    port = _free_port()
    env = dict(os.environ, LLMOS_HOME=str(home), LLMOS_PLUGINS="llmos-monitor,llmos-jsonl-sink,llmos-registry")
    env.pop("LLMOS_DATABASE_URL", None)
    proc = subprocess.Popen(
        [LLMOS, "ui", "--port", str(port), "--refresh", "0.3", "--index", str(index)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/api/runs", timeout=2)
            break
        except OSError as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                output = proc.stdout.read() if proc.stdout else ""
                raise AssertionError(f"llmos ui did not start:\n{output}") from exc
            time.sleep(0.2)
    try:
        yield {"base": base, "home": home, "reg": reg, "done": done, "live": live, "other": other, "env": env,
               "h": helpers}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's chromium (make sysdeps)")
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="llmos-chromium-")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 900},
        )
        try:
            yield ctx
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A tab that records console errors, page errors and failed requests."""
    pg = browser.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning")
          else None)
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    pg.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    pg.problems = problems
    yield pg
    pg.close()


def test_every_page_loads_without_console_errors(dashboard: dict[str, Any], page: Any) -> None:
    base = dashboard["base"]
    expect = {
        "/": "#n-models",
        "/models": "tr[data-model='tiny']",
        "/models/tiny": "#lineage svg",
        "/models/tiny/versions/1": "#files",
        "/models/tiny/versions/2": "#diff table.diff",
        "/runs": f"tr[data-run='{dashboard['done']}']",
        f"/runs/{dashboard['done']}": "#charts svg[data-points]",
        "/plugins": "tr[data-plugin='llmos-monitor']",
        "/community": "tr[data-plugin='llmos-hello']",
    }
    for path, selector in expect.items():
        page.goto(base + path)
        page.wait_for_selector(selector, timeout=15000)
        page.wait_for_load_state("networkidle")
        assert not page.problems, f"{path}: {page.problems}"
    # the pages are self-contained: every request went to the dashboard itself
    assert page.evaluate("performance.getEntriesByType('resource').every(e => e.name.startsWith(location.origin))")
    assert page.text_content("tr[data-plugin='llmos-hello']").count("Says hello from every stage") == 1


def test_version_page_shows_files_metrics_and_diff(dashboard: dict[str, Any], page: Any) -> None:
    page.goto(dashboard["base"] + "/models/tiny/versions/2")
    files = page.locator("#files tr td:first-child").all_text_contents()
    assert sorted(files) == ["config.json", "model.safetensors"]
    sizes = {f["path"]: f["size"] for f in dashboard["reg"].resolve("tiny:2").files}
    for path, size in sizes.items():
        cell = page.locator(f"#files tr:has(td:text-is('{path}')) td[data-bytes]")
        assert int(cell.get_attribute("data-bytes")) == size
    assert "31.25" in page.text_content("#metrics")
    tensors = page.locator("table.diff[data-section='tensors'] tr td:first-child").all_text_contents()
    assert tensors == ["w"]  # only w changed between tiny:1 and tiny:2; b is shared
    assert "-9.25" in page.text_content("table.diff[data-section='metrics']")
    assert not page.problems


def test_run_chart_shows_the_recorded_points(dashboard: dict[str, Any], page: Any) -> None:
    h = dashboard["h"]
    page.goto(f"{dashboard['base']}/runs/{dashboard['done']}")
    page.wait_for_function("document.querySelector('#charts').dataset.polls >= 1")
    loss_svg = page.locator(".chart[data-panel='loss'] svg")
    train = page.locator(".chart[data-panel='loss'] g.series[data-label='train/loss'] circle.pt")
    assert train.count() == 12
    got = [(int(c.get_attribute("data-step")), float(c.get_attribute("data-value"))) for c in train.all()]
    assert got == [(s, h.train_loss(s)) for s in range(1, 13)]
    assert int(loss_svg.get_attribute("data-points")) == 12 + 3  # train/loss + eval/val_loss
    cpu = page.locator(".chart[data-panel='cpu'] circle.pt")
    assert [float(c.get_attribute("data-value")) for c in cpu.all()] == [10.0 + i for i in range(5)]
    assert page.text_content("#run-status") == "completed"
    # recorded text is shown as text, never run as markup
    assert page.evaluate("window.pwned === undefined")
    assert "<script>window.pwned = 1</script> → ok" in page.text_content("pre")
    assert not page.problems


def test_running_run_chart_updates_live(dashboard: dict[str, Any], page: Any) -> None:
    h, reg, live = dashboard["h"], dashboard["reg"], dashboard["live"]
    page.goto(f"{dashboard['base']}/runs/{live}")
    points = ".chart[data-panel='loss'] svg"
    page.wait_for_function(f"document.querySelector(\"{points}\")?.dataset.points === '5'")
    reg.log_run_metrics(live, [("train", s, "loss", h.train_loss(s), time.time()) for s in range(6, 10)])
    page.wait_for_function(f"document.querySelector(\"{points}\").dataset.points === '9'", timeout=15000)
    last = page.locator(".chart[data-panel='loss'] circle.pt").last
    assert (last.get_attribute("data-step"), float(last.get_attribute("data-value"))) == ("9", h.train_loss(9))
    reg.finish_run(live)
    page.wait_for_function("document.querySelector('#run-status').textContent === 'completed'", timeout=15000)
    polls = page.evaluate("document.querySelector('#charts').dataset.polls")
    page.wait_for_timeout(1000)  # a finished run is no longer polled
    assert page.evaluate("document.querySelector('#charts').dataset.polls") == polls
    assert not page.problems


def test_moving_an_alias_on_the_cli_shows_after_reload(dashboard: dict[str, Any], page: Any) -> None:
    page.goto(dashboard["base"] + "/models/tiny")
    row = "#aliases tr[data-alias='production']"
    assert page.get_attribute(row, "data-version") == "1"
    assert "production" in page.text_content("#lineage g.node[data-ref='tiny:1']")
    cp = subprocess.run([LLMOS, "model", "alias", "set", "tiny", "production", "2"], env=dashboard["env"],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr
    page.reload()
    assert page.get_attribute(row, "data-version") == "2"
    assert "production" in page.text_content("#lineage g.node[data-ref='tiny:2']")
    assert "production" not in page.text_content("#lineage g.node[data-ref='tiny:1']")
    page.goto(dashboard["base"] + "/models")
    assert "production → 2" in page.text_content("tr[data-model='tiny']")
    assert not page.problems


def test_unknown_pages_say_what_is_wrong(dashboard: dict[str, Any], browser: Any) -> None:
    pg = browser.new_page()
    try:
        resp = pg.goto(dashboard["base"] + "/models/nope")
        assert resp.status == 404
        assert "no model named 'nope'" in pg.text_content("#error")
        resp = pg.goto(dashboard["base"] + "/runs/does-not-exist")
        assert resp.status == 404
    finally:
        pg.close()


def test_compare_runs_side_by_side_with_overlaid_curves(dashboard: dict[str, Any], page: Any) -> None:
    """Issue 16.5: pick runs on the Runs page, see their metrics and curves together."""
    done, other = dashboard["done"], dashboard["other"]
    page.goto(dashboard["base"] + "/runs")
    page.check(f"input[name='run'][value='{done}']")
    page.check(f"input[name='run'][value='{other}']")
    page.click("#compare-runs")
    page.wait_for_selector("#charts[data-drawn='1']", timeout=15000)
    heads = page.locator("#compare-metrics th[data-run]").evaluate_all("els => els.map(e => e.dataset.run)")
    assert sorted(heads) == sorted([done, other])
    loss = page.locator("#compare-metrics tr[data-metric='train/loss'] td.num").all_text_contents()
    assert len(loss) == 2 and "-" not in loss  # both columns filled
    labels = page.locator(".chart[data-panel='loss'] g.series").evaluate_all("els => els.map(e => e.dataset.label)")
    assert sorted(labels) == sorted([f"{done} train/loss", f"{done} eval/val_loss", f"{other} train/loss"])
    other_pts = page.locator(f".chart[data-panel='loss'] g.series[data-label='{other} train/loss'] circle.pt")
    assert [float(c.get_attribute("data-value")) for c in other_pts.all()] == [2.0 / st for st in range(1, 7)]
    # each run links to the versions it made
    assert page.locator("#compare-metrics a[href='/models/tiny/versions/2']").count() == 1
    assert not page.problems


def test_runs_search_and_filters(dashboard: dict[str, Any], page: Any) -> None:
    page.goto(dashboard["base"] + "/runs")
    page.fill("#run-filters input[name='q']", "tiny:2")
    page.click("#run-filters button")
    rows = page.locator("#runs tr[data-run]").evaluate_all("els => els.map(e => e.dataset.run)")
    assert rows == [dashboard["other"]]
    assert page.locator("#runs tr[data-run] a[data-version='tiny:2']").count() == 1
    page.goto(dashboard["base"] + "/runs?status=completed&pipeline=monitored")
    rows = page.locator("#runs tr[data-run]").evaluate_all("els => els.map(e => e.dataset.run)")
    assert dashboard["other"] in rows and dashboard["done"] in rows
    page.goto(dashboard["base"] + "/runs?q=no-such-run")
    assert "No runs match" in page.text_content("main")
    page.goto(f"{dashboard['base']}/runs/{dashboard['other']}")
    assert page.get_attribute("#run-versions a[data-version='tiny:2']", "href") == "/models/tiny/versions/2"
    page.goto(dashboard["base"] + "/models?q=stage%3Dint8")
    assert page.locator("tr[data-model='tiny']").count() == 1
    page.goto(dashboard["base"] + "/models?q=nothing-like-it")
    assert page.locator("tr[data-model]").count() == 0 and "No models match" in page.text_content("main")
    assert not page.problems


def test_version_page_shows_tasks_and_promotion_history(dashboard: dict[str, Any], page: Any) -> None:
    page.goto(dashboard["base"] + "/models/tiny/versions/2")
    task = page.locator("#tasks tr[data-task='docstrings-mc']")
    assert task.locator("[data-metric='acc']").text_content() == "acc = 0.75"
    assert task.locator("[data-metric='acc_norm']").text_content() == "acc_norm = 0.5"
    assert "docstrings-mc/acc" not in page.text_content("#metrics")  # shown per task, not twice
    kinds = page.locator("#promotions tr[data-kind]").evaluate_all("els => els.map(e => e.dataset.kind)")
    assert kinds == ["deploy.promoted", "deploy.refused"]  # newest first
    assert "31.25" in page.text_content("#promotions") and "val_ppl <= current.val_ppl" in page.text_content(
        "#promotions")
    assert not page.problems


def test_compare_versions_from_the_model_page(dashboard: dict[str, Any], page: Any) -> None:
    page.goto(dashboard["base"] + "/models/tiny")
    page.check("input[name='version'][value='tiny:1']")
    page.check("input[name='version'][value='tiny:2']")
    page.click("#compare-versions")
    page.wait_for_selector("#compare-metrics")
    heads = page.locator("#compare-metrics th[data-version]").evaluate_all("els => els.map(e => e.dataset.version)")
    assert heads == ["tiny:1", "tiny:2"]
    ppl = page.locator("#compare-metrics tr[data-metric='val_ppl'] td.num").all_text_contents()
    assert ppl == ["40.5", "31.25"]
    acc = page.locator("#compare-metrics tr[data-metric='docstrings-mc/acc'] td.num").all_text_contents()
    assert acc == ["-", "0.75"]
    assert not page.problems
