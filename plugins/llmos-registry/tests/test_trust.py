"""Issue 12, items 7-12: the registry's inputs stay inert and its faults lose nothing.

Each test drives the real CLI (``python -m llmos`` processes, or click's runner for
the error messages), on SQLite and on the real PostgreSQL the fixtures start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from registry_testtools import make_model, tensor, tree_bytes, write_safetensors


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def llmos(*args: str) -> Result:
    """``llmos ARGS...`` through the real CLI (click's runner: in this process, which
    saves a second of start-up per call), in this test's home and database."""
    from click.testing import CliRunner

    from llmos.cli import main

    r = CliRunner().invoke(main, list(args))
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Result(r.exit_code, r.stdout, r.stderr)


@pytest.fixture
def cli(db_url: str, plugin_manager: Any) -> str:
    """The CLI on SQLite and on PostgreSQL."""
    return db_url


@pytest.fixture
def sqlite_cli(llmos_home: Path, plugin_manager: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The CLI on the default SQLite database (for what does not depend on the database)."""
    from llmos_registry.db import dispose_engines

    monkeypatch.setenv("LLMOS_PLUGINS", "llmos-registry")
    yield llmos_home
    dispose_engines()


def one_line_error(cp: Result, *needles: str) -> str:
    assert cp.returncode != 0, cp.stdout
    lines = cp.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), cp.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- 12.7 gc during a register ------------------------------------------------------------

GC_LOOP = """
import json, sys, pathlib
from llmos.cli import main
stop = pathlib.Path(sys.argv[1])
n = 0
while not stop.exists():
    try:
        main(["model", "gc", "--grace-seconds", "0", "--json"], standalone_mode=False)
    except SystemExit:
        pass
    n += 1
    print(f"gc {n}", file=sys.stderr, flush=True)
"""


def test_gc_grace_zero_during_register_keeps_the_new_version_loadable(cli: str, tmp_path: Path) -> None:
    """``llmos model gc --grace-seconds 0`` in a loop while ``llmos model register`` runs:
    the version registers and loads (on old main gc deleted its fresh blobs)."""
    src = tmp_path / "big"
    write_safetensors(src / "model.safetensors", {f"t{i}": tensor(i, 2048) for i in range(800)})
    (src / "config.json").write_text(json.dumps({"model_type": "tiny"}))
    assert llmos("model", "register", "warm", str(make_model(tmp_path / "w", [1]))).returncode == 0  # migrate
    stop = tmp_path / "stop"
    loop = subprocess.Popen([sys.executable, "-c", GC_LOOP, str(stop)], env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert loop.stderr is not None
        first = loop.stderr.readline()
        assert first.startswith("gc 1"), first + loop.stderr.read()
        cp = llmos("model", "register", "big", str(src), "--json")
    finally:
        stop.touch()
        _, err = loop.communicate(timeout=120)
    runs = [line for line in err.splitlines() if line.startswith("gc ")]
    assert len(runs) >= 2, err  # gc really ran while the register did
    assert cp.returncode == 0, cp.stderr
    assert json.loads(cp.stdout)["ref"] == "big:1"
    assert llmos("model", "gc", "--grace-seconds", "0").returncode == 0
    fsck = llmos("model", "fsck", "--json")
    assert json.loads(fsck.stdout)["missing"] == [], fsck.stdout
    out = tmp_path / "out"
    assert llmos("model", "export", "big:1", str(out)).returncode == 0
    assert tree_bytes(out) == tree_bytes(src)


def test_stale_pin_of_a_dead_process_expires(cli: str, reg: Any, tmp_path: Path) -> None:
    """A register killed mid-way leaves a pin; gc ignores it once its process is gone."""
    from sqlalchemy import func, select

    from llmos_registry.models import BlobPin

    code = ("import os\nfrom llmos_registry import open_registry, pins\nreg = open_registry()\n"
            "with pins.pinned(reg.session, 'register doomed'):\n"
            "    reg.blobs.put_bytes(b'orphan of a killed register')\n"
            "    os._exit(9)\n")
    cp = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert cp.returncode == 9, cp.stderr
    with reg.session() as s:
        assert s.scalar(select(func.count()).select_from(BlobPin)) == 1
    time.sleep(0.3)  # gc keeps what was touched just before it started (clock granularity)
    gc = json.loads(llmos("model", "gc", "--grace-seconds", "0", "--json").stdout)
    assert gc["removed_blobs"] == 1 and gc["live_pins"] == 0, json.dumps(gc)
    with reg.session() as s:
        assert s.scalar(select(func.count()).select_from(BlobPin)) == 0


# -- 12.8 symbolic links ------------------------------------------------------------------


def test_symlink_out_of_the_model_dir_is_refused_and_never_exported(sqlite_cli: Path, tmp_path: Path) -> None:
    src = make_model(tmp_path / "m", [1])
    (src / "passwd.txt").symlink_to("/etc/passwd")
    cp = llmos("model", "register", "leak", str(src))
    one_line_error(cp, "passwd.txt", "symbolic link", "outside the model directory")
    assert "leak" not in llmos("model", "list").stdout
    out = tmp_path / "out"
    assert llmos("model", "export", "leak", str(out)).returncode != 0
    assert not (out / "passwd.txt").exists()
    # a linked directory that leaves the tree is refused too (it used to be skipped silently)
    (src / "passwd.txt").unlink()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text("{}")
    (src / "extra").symlink_to(outside)
    one_line_error(llmos("model", "register", "leak", str(src)), "extra", "outside the model directory")


def test_symlinks_inside_the_tree_are_followed_not_skipped(sqlite_cli: Path, tmp_path: Path) -> None:
    src = make_model(tmp_path / "m", [1])
    (src / "sub").mkdir()
    (src / "sub" / "vocab.txt").write_text("a\nb\n")
    (src / "shared").symlink_to("sub")  # a linked directory inside the tree
    (src / "tokenizer_config.json").symlink_to("tokenizer.json")  # a linked file inside the tree
    cp = llmos("model", "register", "linked", str(src), "--json")
    assert cp.returncode == 0, cp.stderr
    paths = [f["path"] for f in json.loads(cp.stdout)["files"]]
    assert "shared/vocab.txt" in paths and "sub/vocab.txt" in paths and "tokenizer_config.json" in paths
    out = tmp_path / "out"
    assert llmos("model", "export", "linked:1", str(out)).returncode == 0
    assert (out / "shared" / "vocab.txt").read_text() == "a\nb\n"
    assert not any(p.is_symlink() for p in out.rglob("*"))
    (src / "sub" / "loop").symlink_to("..")
    one_line_error(llmos("model", "register", "linked", str(src)), "loop")
    (src / "sub" / "loop").unlink()
    (src / "dangling").symlink_to("nowhere")
    one_line_error(llmos("model", "register", "linked", str(src)), "dangling", "broken")


# -- 12.9 names and aliases ---------------------------------------------------------------


def test_names_match_whole_and_are_unique_case_insensitively(cli: str, tmp_path: Path) -> None:
    src = make_model(tmp_path / "m", [1])
    assert llmos("model", "register", "trailnl", str(src)).returncode == 0
    one_line_error(llmos("model", "register", "trailnl\n", str(src)), "invalid model name", "control character")
    one_line_error(llmos("model", "register", "tab\there", str(src)), "invalid model name")
    one_line_error(llmos("model", "show", "trailnl\n"), "invalid model reference")
    one_line_error(llmos("model", "alias", "set", "trailnl", "prod\n", "1"), "invalid alias", "control character")
    one_line_error(llmos("model", "register", "trailnl", str(src), "--alias", "canary\n"), "invalid alias")
    one_line_error(llmos("model", "register", "trailnl", str(src), "--tag", "te\tam=nlp"), "invalid tag key")
    one_line_error(llmos("model", "show", "trailnl:1\n"), "invalid model reference")
    one_line_error(llmos("model", "show", "trailnl:²"), "invalid model reference")

    assert llmos("model", "register", "quickstart", str(src)).returncode == 0
    line = one_line_error(llmos("model", "register", "Quickstart", str(src)), "'Quickstart'", "'quickstart'",
                          "case-insensitively")
    assert "use 'quickstart'" in line
    line = one_line_error(llmos("model", "show", "QuickStart"), "no model named 'QuickStart'", "did you mean 'quickstart'")
    models = json.loads(llmos("model", "list", "--json").stdout)
    assert [m["name"] for m in models] == ["quickstart", "trailnl"]
    assert [m["versions"] for m in models] == [1, 1]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_renames_existing_case_duplicates(backend: str, llmos_home: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    request: pytest.FixtureRequest) -> None:
    """A database made before names were case-insensitive, holding ``Quickstart`` beside
    ``quickstart`` and ``trailnl\\n``: upgrading keeps the oldest name and renames the others."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from llmos_registry import db, open_registry

    url = f"sqlite:///{tmp_path / 'old.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_database")
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    cfg = db.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
        for i, name in enumerate(["quickstart", "Quickstart", "trailnl\n", "QUICKSTART"], 1):
            conn.execute(text("INSERT INTO models (id, name, description, last_version, created_at) "
                              "VALUES (:i, :n, '', 0, '2026-01-01 00:00:00')"), {"i": i, "n": name})
    engine.dispose()
    monkeypatch.setenv("LLMOS_DATABASE_URL", url)
    reg = open_registry()
    assert sorted(m["name"] for m in reg.list_models()) == sorted(["quickstart", "Quickstart-2", "trailnl-3", "QUICKSTART-4"])
    renamed = {e["data"]["old"]: e["data"]["new"] for e in reg.events(kind="model.renamed")}
    assert renamed == {"Quickstart": "Quickstart-2", "trailnl\n": "trailnl-3", "QUICKSTART": "QUICKSTART-4"}
    db.dispose_engines()


# -- 12.10 forged safetensors headers -----------------------------------------------------


def forged(path: Path, header: bytes | str, data: bytes = b"\0" * 8) -> Path:
    raw = header.encode() if isinstance(header, str) else header
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)
    return path


def _t(shape: str = "[2]", dtype: str = '"F32"', offsets: str = "[0, 8]", name: str = "w") -> str:
    return '{"%s": {"dtype": %s, "shape": %s, "data_offsets": %s}}' % (name, dtype, shape, offsets)


FORGERIES = {
    "huge dim": (_t(shape="[1e400]"), "shape"),
    "float dim": (_t(shape="[2.0]"), "shape"),
    "bool dim": (_t(shape="[true, 2]"), "shape"),
    "negative dim": (_t(shape="[-2, -1]"), "shape"),
    "dim past int64": (_t(shape="[%d]" % (1 << 64)), "shape"),
    "deep nesting": ("[" * 100_000 + "]" * 100_000, "nests"),
    "deep nesting in a tensor": (_t(shape="[" * 50 + "2" + "]" * 50), "nests"),
    "unknown dtype": (_t(dtype='"F33"'), "unknown dtype"),
    "dtype not a string": (_t(dtype="{}"), "unknown dtype"),
    "reserved name": (_t(name="__header__"), "reserved"),
    "gap name": (_t(name="__gap__"), "reserved"),
    "offsets outside": (_t(offsets="[0, 800]"), "outside the file"),
    "offsets reversed": (_t(offsets="[8, 0]"), "outside the file"),
    "negative offset": (_t(offsets="[-8, 0]"), "data_offsets"),
    "three offsets": (_t(offsets="[0, 4, 8]"), "data_offsets"),
    "size mismatch": (_t(shape="[3]"), "should take 12 bytes, not 8"),
    "NaN": (_t(shape="[NaN]"), "not JSON"),
    "duplicate tensor": ('{"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, '
                         '"w": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}}', "twice"),
    "overlap": ('{"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]}, '
                '"b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}', "overlaps"),
    "extra key": ('{"w": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8], "x": 1}}', "exactly"),
    "metadata not strings": ('{"__metadata__": {"a": 1}}', "__metadata__"),
    "not an object": ("[1, 2]", "not a JSON object"),
    "huge integer": (_t(shape="[" + "9" * 5000 + "]"), "not JSON"),
    "not utf-8": (b'{"\xff": 1}', "not JSON"),
}


def test_forged_safetensors_headers_are_refused_in_one_line(sqlite_cli: Path, tmp_path: Path) -> None:
    for i, (case, (header, needle)) in enumerate(FORGERIES.items()):
        src = make_model(tmp_path / str(i), [1])
        forged(src / "model.safetensors", header)
        r = llmos("model", "register", "forged", str(src))
        line = one_line_error(r, "is not a valid safetensors file", needle)
        assert "model.safetensors" in line, case
    assert "No models yet" in llmos("model", "list").stdout
    assert not [p for p in (sqlite_cli / "blobs").rglob("*") if p.is_file()]  # nothing stored


# -- 12.11 disk full ----------------------------------------------------------------------

DISK_FULL = """
import json, sys
from pathlib import Path
from click.testing import CliRunner
from llmos.cli import main
home, small, big = (Path(a) for a in sys.argv[1:4])
def cli(*args):
    r = CliRunner().invoke(main, list(args))
    return {"rc": r.exit_code, "out": r.stdout, "err": r.stderr}
def blobs():
    return sorted(str(p) for p in (home / "blobs").rglob("*") if p.is_file())
out = {"small": cli("model", "register", "small", str(small))}
before = blobs()
out["big"] = cli("model", "register", "big", str(big))
out["left"] = [b for b in blobs() if b not in before]
out["list"] = cli("model", "list", "--json")
out["again"] = cli("model", "register", "small", str(small))
print(json.dumps(out))
"""


def test_disk_full_register_is_one_line_and_leaves_nothing(cli: str, tmp_path: Path) -> None:
    """A register that fills a real 4 MB file system (tmpfs, mounted in a private mount
    namespace: as root, or as a user through a user namespace) fails in one line and
    removes what it wrote at once, so the disk is usable again."""
    small = make_model(tmp_path / "small", [1])
    big = tmp_path / "big"
    write_safetensors(big / "model.safetensors", {f"t{i}": tensor(100 + i, 64 * 1024) for i in range(24)})  # 6 MB
    home = tmp_path / "tmpfs-home"
    home.mkdir()
    unshare = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--mount"]
    script = 'mount -t tmpfs -o size=4m tmpfs "$1" && shift && exec "$@"'
    env = dict(os.environ, LLMOS_HOME=str(home))
    if cli.startswith("sqlite"):
        env.pop("LLMOS_DATABASE_URL")  # the database is on the full disk too
    cp = subprocess.run([*unshare, "sh", "-c", script, "sh", str(home), sys.executable, "-c", DISK_FULL, str(home),
                         str(small), str(big)], env=env, capture_output=True, text=True, timeout=180)
    assert cp.returncode == 0, cp.stderr
    out = json.loads(cp.stdout.strip().splitlines()[-1])
    assert out["small"]["rc"] == 0, out["small"]
    big_err = out["big"]["err"].strip().splitlines()
    assert out["big"]["rc"] != 0 and len(big_err) == 1, out["big"]
    assert big_err[0].startswith("Error: ") and "no space left" in big_err[0] and "nothing was registered" in big_err[0]
    assert out["left"] == []  # removed at once, not after gc's grace
    assert [m["name"] for m in json.loads(out["list"]["out"])] == ["small"]
    assert out["again"]["rc"] == 0, out["again"]


# -- 12.12 fsck verifies checkouts ----------------------------------------------------------


def tiny_llama(path: Path) -> Path:
    """A real ~20k-parameter Llama with a byte-level BPE (random weights), HF layout."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["hello world, a tiny model says hi. " * 20], trainers.BpeTrainer(
        vocab_size=280, special_tokens=["<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                      eos_token_id=fast.eos_token_id, pad_token_id=fast.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path


def test_edited_checkout_is_reported_by_fsck_and_repaired(llmos_home: Path, standard_plugins: Any, tmp_path: Path) -> None:
    from llmos_registry.db import dispose_engines

    standard_plugins("llmos-models")  # for `llmos generate`
    sqlite_cli = llmos_home

    def generate() -> Result:
        return llmos("generate", "tiny:1", "hi", "-n", "3", "--no-stream")

    src = tiny_llama(tmp_path / "tiny")
    assert llmos("model", "register", "tiny", str(src)).returncode == 0
    first = generate()
    assert first.returncode == 0, first.stderr
    config = sqlite_cli / "checkouts" / "tiny" / "1" / "config.json"
    assert config.is_file()

    def edit() -> None:  # what a user with an editor does: make it writable, change it
        st = config.stat()
        os.chmod(config, 0o644)
        config.write_text(config.read_text().replace('"hidden_size": 16', '"hidden_size": 24'))
        os.utime(config, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with its mtime kept

    edit()
    r = llmos("model", "fsck")
    assert r.returncode == 1 and "checkout tiny:1 differs from its version (modified config.json)" in r.stdout
    data = json.loads(llmos("model", "fsck", "--json").stdout)
    assert data["ok"] is False and data["checkouts"][0]["modified"] == ["config.json"]
    r = llmos("model", "fsck", "--repair")
    assert r.returncode == 0 and "repaired" in r.stdout, r.stdout
    assert '"hidden_size": 16' in config.read_text()
    assert json.loads(llmos("model", "fsck", "--json").stdout)["ok"] is True
    second = generate()
    assert second.returncode == 0 and second.stdout == first.stdout, second.stderr

    # an edit that changes the mtime is caught by the next checkout itself (cheap: sizes and mtimes)
    os.chmod(config, 0o644)
    config.write_text("{}")
    third = generate()
    assert third.returncode == 0 and third.stdout == first.stdout, third.stderr
    assert '"hidden_size": 16' in config.read_text()
    dispose_engines()
