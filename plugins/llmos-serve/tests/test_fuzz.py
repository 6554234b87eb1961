"""Schema fuzzing: schemathesis generates requests from the server's own OpenAPI
document (valid and invalid bodies) and sends them to a live server; no 5xx."""

from __future__ import annotations

import zlib

import httpx


def test_openapi_fuzz_no_server_errors(start_server, tiny_dir):
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import not_a_server_error

    srv = start_server(model=str(tiny_dir), max_tokens_limit=8, admin_token="fuzz-token", timeout=20)
    doc = httpx.get(srv.url + "/openapi.json").json()
    assert {"/v1/models", "/v1/completions", "/v1/chat/completions", "/health", "/ready", "/metrics"} <= set(
        doc["paths"]
    )
    schema = schemathesis.openapi.from_url(srv.url + "/openapi.json")
    tested = []
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path.startswith("/admin/reload"):
            continue  # reloading weights in a loop proves nothing and costs seconds
        examples = 30 if op.path.startswith("/v1/") and op.method.upper() == "POST" else 5

        @given(case=op.as_strategy())
        @settings(
            max_examples=examples, deadline=None, derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case):  # type: ignore[no-untyped-def]
            # the model is named right half of the time, so generation itself is fuzzed too
            if isinstance(case.body, dict) and "model" in case.body and zlib.crc32(repr(case.body).encode()) % 2:
                case.body["model"] = "tiny"
            case.call_and_validate(base_url=srv.url, checks=[not_a_server_error], timeout=30)

        check()
        tested.append(f"{op.method.upper()} {op.path}")
    assert "POST /v1/chat/completions" in tested and "POST /v1/completions" in tested
    fuzzed = httpx.get(srv.url + "/stats").json()["engines"][0]["sequences_finished"]
    assert fuzzed > 0, "no fuzzed request reached the model"
    # the server is still healthy after the fuzzing
    r = httpx.post(srv.url + "/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 2})
    assert r.status_code == 200
