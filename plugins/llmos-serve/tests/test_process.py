"""`llmos serve` as a real process: SIGTERM drains in-flight requests, exit handlers
run (the monitor closes its serve run), the exit status is 0; /metrics read with
Prometheus's own parser (the engines and the app feed one registry; with
--workers 2 one scrape gives the totals of both workers)."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx

N = 6
MAX_TOKENS = 3


def _scrape(url: str) -> dict[str, list]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url + "/metrics", headers={"Connection": "close"}).text
    return {f.name: f.samples for f in text_string_to_metric_families(text)} | {"_text": text}  # type: ignore[dict-item]


def _value(families: dict, family: str, sample: str, **labels: str) -> float:
    return sum(s.value for s in families[family] if s.name == sample and labels.items() <= s.labels.items())


def check_metrics(url: str, n: int, max_tokens: int) -> None:
    """Scrape ``url`` three times (any worker may answer): each gives the totals of ``n``
    completions of ``max_tokens`` tokens, under Prometheus names."""
    for _ in range(3):
        m = _scrape(url)
        assert "llmos:" not in m["_text"]
        assert _value(m, "llmos_http_requests", "llmos_http_requests_total",
                      endpoint="/v1/completions", status="200") == n
        assert _value(m, "llmos_generation_tokens", "llmos_generation_tokens_total", model_name="tiny") == n * max_tokens
        assert _value(m, "llmos_prompt_tokens", "llmos_prompt_tokens_total") > n
        assert _value(m, "llmos_request_success", "llmos_request_success_total", finished_reason="length") == n
        assert _value(m, "llmos_e2e_request_latency_seconds", "llmos_e2e_request_latency_seconds_count") == n
        assert _value(m, "llmos_time_to_first_token_seconds", "llmos_time_to_first_token_seconds_count") == n
        assert _value(m, "llmos_inter_token_latency_seconds",
                      "llmos_inter_token_latency_seconds_count") == n * (max_tokens - 1)
        assert _value(m, "llmos_batch_size", "llmos_batch_size_count") >= n * (max_tokens - 1)
        assert "llmos_num_requests_running" in m and "llmos_generation_tokens_per_second" in m


def check_serve_runs(min_tps: float = 0.0) -> list:
    """Every serve run is closed, and recorded a throughput > 0 (the dashboard's panel)."""
    from llmos.registry import open_registry

    reg = open_registry()
    runs = [r for r in reg.list_runs() if r.pipeline == "serve"]
    assert runs and all(r.status == "completed" for r in runs), [(r.id, r.status) for r in runs]
    tps = [p["value"] for r in runs for p in reg.run_metrics(r.id, "generation_tokens_per_s", kind="serve")]
    assert tps and max(tps) > min_tps, tps
    return runs


def test_sigterm_drains_streams_closes_the_run_and_exits_0(tiny_dir, serve_process):
    import openai

    from llmos.registry import open_registry

    srv = serve_process([str(tiny_dir), "--admin-token", "hunter2", "--drain-timeout", "60", "--max-batch-size", "1"],
                        LLMOS_API_KEY="sk-from-env").wait_ready()
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="sk-from-env", max_retries=0, timeout=60)
    assert httpx.get(srv.url + "/v1/models").status_code == 401  # the key came from $LLMOS_API_KEY
    for i in range(N):
        done = client.completions.create(model="tiny", prompt=f"hello {i}", max_tokens=MAX_TOKENS,
                                         stop=["never-produced-stop-string"], temperature=0)
        assert done.usage.completion_tokens == MAX_TOKENS
    check_metrics(srv.url, N, MAX_TOKENS)  # the engines and the app feed one registry
    got: dict[str, Any] = {}
    first = threading.Event()

    def stream() -> None:
        pieces = []
        for chunk in client.completions.create(model="tiny", prompt="once upon", max_tokens=120, temperature=0,
                                               stream=True, stop=["never-produced-stop-string"]):
            pieces.append(chunk)
            first.set()
        got["chunks"] = pieces

    t = threading.Thread(target=stream)
    t.start()
    assert first.wait(60)
    code, out, err = srv.terminate()
    t.join(60)
    # the in-flight stream finished whole, the process ended normally
    chunks = got["chunks"]
    assert chunks[-1].choices[0].finish_reason == "length"
    assert len(chunks) > 60  # every token came, though SIGTERM arrived after the first
    assert code == 0, err[-3000:]
    # the exit handlers ran: the serve run is closed, not "running" forever
    runs = check_serve_runs()
    assert len(runs) == 1
    run = open_registry().get_run(runs[0].id)
    assert run.summary.get("requests") == N + 1
    recorded = json.dumps(run.config)
    assert "hunter2" not in recorded and "sk-from-env" not in recorded  # secrets are never recorded
    assert "sk-from-env" not in out + err and "hunter2" not in out + err


def test_two_workers_one_scrape_gives_the_totals(tiny_dir, serve_process):
    srv = serve_process([str(tiny_dir), "--workers", "2", "--drain-timeout", "30"]).wait_ready()
    for _ in range(40):  # both workers up: each answers /ready on its own
        httpx.get(srv.url + "/ready", headers={"Connection": "close"})
    finished = set()
    with httpx.Client(headers={"Connection": "close"}, timeout=60) as c:  # a new connection: any worker
        for i in range(N):
            r = c.post(srv.url + "/v1/completions",
                       json={"model": "tiny", "prompt": f"hello {i}", "max_tokens": MAX_TOKENS, "temperature": 0,
                             "stop": ["never-produced-stop-string"]})
            assert r.status_code == 200
        for _ in range(10):
            finished.add(c.get(srv.url + "/stats").json()["engines"][0]["sequences_finished"])
    # /stats is one process's view (a part of the N, or all); /metrics is the sum of both
    assert finished <= set(range(N + 1)), finished
    check_metrics(srv.url, N, MAX_TOKENS)
    code, _, err = srv.terminate()
    assert code == 0, err[-3000:]
    check_serve_runs()
