"""The typed contract between stages (llmos.artifacts): every key used anywhere is
declared, the standard plugins use the typed keys, DESIGN.md's table is generated."""

from __future__ import annotations

import io
import re
import subprocess
import tokenize
import sys
from pathlib import Path

import pytest

from llmos import artifacts as A
from llmos.errors import ValidationError

ROOT = Path(__file__).resolve().parents[2]
STRING_KEY = re.compile(r"""\bartifacts(?:\[|\.get\(|\.pop\(|\.setdefault\()\s*["']([A-Za-z_]\w*)["']""")


def _sources(*globs: str) -> list[Path]:
    out: list[Path] = []
    for g in globs:
        out += sorted(ROOT.glob(g))
    return [p for p in out if ".venv" not in p.parts]


def test_every_key_used_anywhere_is_declared():
    used: dict[str, set[str]] = {}
    for f in _sources("llmos/**/*.py", "plugins/*/llmos_*/**/*.py", "plugins/*/tests/**/*.py", "tests/**/*.py",
                      "benchmarks/**/*.py"):
        for key in STRING_KEY.findall(f.read_text()):
            used.setdefault(key, set()).add(str(f.relative_to(ROOT)))
    undeclared = {k: sorted(v) for k, v in used.items() if k not in A.BY_NAME}
    # test-only toy keys of the pipeline tests' own plugin are allowed, nothing else
    undeclared.pop("numbers", None)
    undeclared.pop("tags", None)
    assert not undeclared, f"declare these keys in llmos/artifacts.py: {undeclared}"


def test_core_and_standard_plugins_use_the_typed_keys():
    offenders = []
    for f in _sources("llmos/**/*.py", "plugins/*/llmos_*/**/*.py"):
        if f.name == "artifacts.py" or "scaffold" in f.name:  # templates written for other projects
            continue
        toks = [t for t in tokenize.generate_tokens(io.StringIO(f.read_text()).readline)
                if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT)]
        for i, t in enumerate(toks[:-3]):  # code, not prose: an artifacts subscript or get/pop/setdefault call with a string
            nxt = [x.string for x in toks[i + 1:i + 4]]
            if t.string == "artifacts" and (nxt[0] == "[" and toks[i + 2].type == tokenize.STRING
                                            or nxt[:2] in (['.', 'get'], ['.', 'pop'], ['.', 'setdefault'])
                                            and toks[i + 4].type == tokenize.STRING):
                offenders.append(f"{f.relative_to(ROOT)}:{t.start[0]}: {t.line.strip()}")
    assert not offenders, "use llmos.artifacts keys:\n" + "\n".join(offenders)


def test_design_table_is_generated_from_the_module():
    text = (ROOT / "DESIGN.md").read_text()
    section = text.split("<!-- artifacts:begin -->\n", 1)[1].split("<!-- artifacts:end -->", 1)[0]
    assert section == A.render_table(), "run: python -m llmos.artifacts and paste between the markers"
    assert {k.name for k in A.KEYS} == set(A.BY_NAME) and len(A.KEYS) == len(A.BY_NAME)


def test_module_is_light():
    code = "import sys, llmos.artifacts; print(sorted(m for m in ('torch','numpy','transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_keys_get_set_require_and_check(tmp_path):
    from llmos.context import RunContext

    ctx = RunContext(run_id=None, spec=None, workdir=tmp_path)
    with pytest.raises(ValidationError, match=r"model.evaluate needs ctx.artifacts\['dataset'\] .*written by `data.corpus`"):
        A.DATASET.require(ctx, "model.evaluate")
    A.METRICS.set(ctx, {"val_loss": 2.5})
    assert A.METRICS.get(ctx) == {"val_loss": 2.5} == ctx.artifacts["metrics"]
    A.LINEAGE.set(ctx, {"method": "m", "settings": {}, "data": {"dataset_dir": "/x"}})
    A.MODEL_VERSION.set(ctx, "tiny")  # not a "name:N" reference
    A.MODEL.set(ctx, object())
    undeclared = "mystery"
    ctx.artifacts[undeclared] = 1
    problems = A.check_artifacts(ctx.artifacts)
    assert any("'lineage'" in p and "unknown lineage data keys ['dataset_dir']" in p for p in problems), problems
    assert any("'model_version'" in p for p in problems)
    assert any("'model'" in p and "is not a CausalLM (missing: __call__, eval, parameters)" in p for p in problems)
    assert not any("mystery" in p for p in problems)
    assert any("mystery" in p for p in A.check_artifacts(ctx.artifacts, allow_undeclared=False))
    assert A.LINEAGE.pop(ctx)["method"] == "m" and A.LINEAGE.get(ctx) is None


def test_standard_values_satisfy_the_protocols(tmp_path):
    """Real values: a transformers tokenizer and model satisfy Tokenizer and CausalLM."""
    from tokenizers import Tokenizer as RawTokenizer
    from tokenizers.models import WordLevel
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=RawTokenizer(WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]")))
    model = LlamaForCausalLM(LlamaConfig(vocab_size=4, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    arts = {"tokenizer": tok, "model": model, "metrics": {"val_ppl": 3.0}, "model_version": "tiny:1",
            "lineage": {"method": "train", "settings": {"lr": 1e-3}, "data": {"path": "/d", "vocab_size": 4}}}
    assert A.check_artifacts(arts) == []


PYPROJECT = """
[project]
name = "llmos-lister"
version = "0.1.0"
[project.entry-points.llmos]
llmos-lister = "llmos_lister"
"""

PLUGIN = '''
from pydantic import BaseModel
from llmos import hookimpl
from llmos.artifacts import METRICS, TEXT_LINES

LLMOS_API = 2


class Cfg(BaseModel):
    broken: bool = False


class Lister:
    def __init__(self, config):
        self.config = config

    def run(self, ctx):
        TEXT_LINES.set(ctx, ["a", "b"])
        if self.config.broken:
            METRICS.set(ctx, {"val_loss": "low"})      # not dict[str, float]
            ctx.artifacts.update(my_own_key=1)          # not declared
        return {"n": 2}


@hookimpl
def llmos_register_data_steps(register):
    register("lister", Lister, config=Cfg, description="Two lines of text")
'''


def test_plugin_test_run_checks_outputs_against_the_protocols(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "pyproject.toml").write_text(PYPROJECT)
    (proj / "llmos_lister.py").write_text(PLUGIN)
    pipe = tmp_path / "tiny.toml"
    # `llmos plugin test` is a command of the standard plugin llmos-community
    env = dict(__import__("os").environ, LLMOS_HOME=str(tmp_path / "home"), LLMOS_PLUGINS="llmos-community,llmos-registry")

    def run(broken: bool):
        pipe.write_text('[pipeline]\nname = "t"\n\n[[stages]]\nid = "lines"\nuse = "data.lister"\n'
                        f"[stages.config]\nbroken = {str(broken).lower()}\n")
        return subprocess.run([sys.executable, "-m", "llmos", "plugin", "test", str(proj), "--run", str(pipe)],
                              capture_output=True, text=True, env=env, timeout=120)

    good = run(False)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = run(True)
    assert bad.returncode == 1
    assert "after stage lines (data.lister): ctx.artifacts['metrics']" in bad.stdout
    assert "my_own_key'] is not a declared artifact key" in bad.stdout
    # the run used a temporary home (the CLI's own home holds at most its entry-point cache)
    home = tmp_path / "home"
    assert not home.exists() or {p.name for p in home.iterdir()} <= {"cache"}
