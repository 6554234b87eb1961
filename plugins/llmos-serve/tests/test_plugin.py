"""The plugin itself: contract, light hook module, CLI help, pipeline component,
models saved by the model plugin (generation defaults, chat template)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest


def test_plugin_contract_and_component(plugin_manager):
    import llmos_serve.plugin as hooks
    from llmos.testing import check_plugin_contract

    check_plugin_contract(hooks, "llmos-serve")
    plugin_manager.register(hooks, name="llmos-serve")
    comp = plugin_manager.get_component("deployment.openai-server")
    cfg = comp.validate_config({"model": "quickstart@production", "port": 9000, "canary_percent": 5})
    assert cfg.host == "127.0.0.1" and cfg.port == 9000
    from llmos.errors import ValidationError

    with pytest.raises(ValidationError, match="port"):
        comp.validate_config({"port": 70000})


def test_hook_and_cli_modules_are_light():
    code = (
        "import sys, llmos_serve.plugin, llmos_serve.cli\n"
        "heavy = [m for m in ('torch', 'transformers', 'fastapi', 'uvicorn', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_cli_help_teaches(standard_plugins, tiny_dir, tmp_path):
    from click.testing import CliRunner

    from llmos.cli import main

    standard_plugins("llmos-serve")
    r = CliRunner().invoke(main, ["serve", "--help"])
    assert r.exit_code == 0
    for text in ("llmos serve quickstart@production", "--canary-percent", "--admin-token", "--workers",
                 "X-Llmos-Model-Version"):
        assert text in r.output
    r = CliRunner().invoke(main, ["deploy", "--help"])
    assert "promote" in r.output and "rollback" in r.output
    r = CliRunner().invoke(main, ["serve", "not a ref!"])
    assert r.exit_code != 0 and r.output.startswith("Error: invalid model reference")
    r = CliRunner().invoke(main, ["serve", "./no-such-dir"])
    assert r.exit_code != 0 and "not a model directory" in r.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_dir / "config.json").read_text())  # no weights
    r = CliRunner().invoke(main, ["serve", str(broken), "--port", "0", "--no-access-log"])
    assert r.exit_code != 0 and "could not load" in r.output and "safetensors" in r.output


def test_pipeline_step_serves_in_background(plugin_manager, tiny_dir, tmp_path):
    from llmos.context import RunContext
    from llmos_serve.config import ServeConfig
    from llmos_serve.step import ServeStep

    ctx = RunContext(run_id=None, spec=None, workdir=tmp_path)
    ctx.artifacts["model_version"] = str(tiny_dir)
    result = ServeStep(ServeConfig(port=0, block=False, access_log=False)).run(ctx)
    try:
        assert result["url"] == ctx.artifacts["server_url"]
        r = httpx.post(result["url"] + "/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 2})
        assert r.status_code == 200
    finally:
        ctx.artifacts["server"].stop()
    from llmos.errors import ValidationError

    with pytest.raises(ValidationError, match="nothing to serve"):
        ServeStep(ServeConfig(block=False)).run(RunContext(run_id=None, spec=None, workdir=tmp_path))


def test_model_saved_by_model_plugin_uses_its_defaults(start_server, tiny_models, tmp_path):
    io = pytest.importorskip("llmos_models.io")  # a standard plugin: installed by `make test`
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_models[0])
    tok = AutoTokenizer.from_pretrained(tiny_models[0])
    template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }} {% endfor %}[assistant]"
    path = io.save_model(model, tok, tmp_path / "saved", chat_template=template,
                         generation={"temperature": 0.0, "max_new_tokens": 5})
    srv = start_server(model=str(Path(path)))
    a = httpx.post(srv.url + "/v1/completions", json={"model": "saved", "prompt": "once upon"}).json()
    b = httpx.post(srv.url + "/v1/completions", json={"model": "saved", "prompt": "once upon"}).json()
    assert a["usage"]["completion_tokens"] == 5  # max_new_tokens recorded with the model
    assert a["choices"][0]["text"] == b["choices"][0]["text"]  # temperature 0 recorded: greedy
    chat = httpx.post(srv.url + "/v1/chat/completions",
                      json={"model": "saved", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2})
    from llmos_models.chat import encode_prompt

    # the template recorded with the model, encoded as training encodes (a leading bos, then the pieces)
    expected = encode_prompt(tok, [{"role": "user", "content": "hello"}], template)
    assert chat.json()["usage"]["prompt_tokens"] == len(expected)
