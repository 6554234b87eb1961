"""Secrets are never stored or shown (issue 12.2): settings named like a token, key,
secret or password, and passwords inside database URLs, are recorded as ``***``."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from llmos.cli import main
from llmos.redact import is_secret_name, redact, redact_argv, redact_env

SECRET = "hunter2"


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _stored_bytes(home: Path) -> bytes:
    """Everything the registry wrote: the SQLite file and its write-ahead log."""
    return b"".join(p.read_bytes() for p in home.glob("llmos.db*"))


def test_run_settings_with_secrets_are_stored_masked_and_resume_asks_for_them(toy_file, steps, llmos_home,
                                                                              registry) -> None:
    r = cli("run", str(toy_file), "-q", "--json", "--set", f"stages.train.config.hub_token={SECRET}",
            "--set", f"stages.train.config.db_url=postgresql://u:{SECRET}@db.example/llmos",
            "--set", "stages.train.config.fail_at=3")
    assert r.exit_code != 0
    run_id = registry.list_runs()[0].id
    shown = cli("runs", "show", run_id, "--json")
    assert shown.exit_code == 0, shown.output
    config = json.loads(shown.output)["config"]
    train = next(s for s in config["stages"] if s.get("id") == "train")["config"]
    assert train["hub_token"] == "***"
    assert train["db_url"] == "postgresql://u:***@db.example/llmos"
    assert SECRET not in shown.output
    assert SECRET.encode() not in _stored_bytes(llmos_home)
    assert not any(SECRET in p.read_text(errors="replace") for p in llmos_home.rglob("*.json"))

    # resuming cannot use the masked values: a one-line error names what to give again
    r = cli("run", "--resume", run_id, "-q")
    assert r.exit_code == 2, r.output  # a usage error
    assert len(r.output.strip().splitlines()) == 1, r.output
    assert "stages.train.config.hub_token" in r.output and "stages.train.config.db_url" in r.output
    assert "--set stages.train.config.hub_token=VALUE" in r.output
    assert registry.get_run(run_id).status == "failed"  # refused before anything was touched
    r = cli("run", "--resume", run_id, "-q", "--set", f"stages.train.config.hub_token={SECRET}",
            "--set", f"stages.train.config.db_url=postgresql://u:{SECRET}@db.example/llmos")
    assert r.exit_code == 0, r.output
    assert registry.get_run(run_id).status == "completed"
    assert SECRET.encode() not in _stored_bytes(llmos_home)


def test_what_counts_as_a_secret() -> None:
    for name in ("--admin-token", "--api-key", "LLMOS_API_KEY", "HF_TOKEN", "hfToken", "password", "db.password",
                 "AWS_SECRET_ACCESS_KEY", "client_secret", "key", "signing_key", "--passwd"):
        assert is_secret_name(name), name
    for name in ("max_tokens", "tokenizer", "eos_token", "pad_token", "eos_token_id", "tokens_per_s",
                 "text_key", "vocab_size", "keyword", "monkey", "author", "PWD", "public_key"):
        assert not is_secret_name(name), name
    argv = ["llmos", "serve", "m", "--admin-token", SECRET, f"--api-key={SECRET}", "--set",
            f"stages.s.config.hub_token={SECRET}", f"--db=sqlite:///x", f"postgresql://me:{SECRET}@h:5432/db"]
    out = redact_argv(argv)
    assert SECRET not in json.dumps(out)
    assert out[:5] == ["llmos", "serve", "m", "--admin-token", "***"] and out[5] == "--api-key=***"
    assert out[-1] == "postgresql://me:***@h:5432/db" and out[-2] == "--db=sqlite:///x"
    env = redact_env({"LLMOS_DATABASE_URL": f"postgresql+psycopg://u:{SECRET}@h/db", "LLMOS_ADMIN_TOKEN": SECRET,
                      "HOME": "/root"})
    assert env == {"LLMOS_DATABASE_URL": "postgresql+psycopg://u:***@h/db", "LLMOS_ADMIN_TOKEN": "***",
                   "HOME": "/root"}
    assert redact({"a": {"api_key": SECRET, "empty_token": "", "n_tokens": 3}, "argv": ["--token", SECRET]}) == {
        "a": {"api_key": "***", "empty_token": "", "n_tokens": 3}, "argv": ["--token", "***"]}
