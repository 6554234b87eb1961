"""Pipeline files: every problem reported with its location, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos.errors import ValidationError
from llmos.pipeline.spec import PipelineError, apply_overrides, load_pipeline, parse_value


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "p.toml"
    p.write_text(text)
    return p


def test_valid_pipeline_resolves_components_and_defaults(toy_file, steps) -> None:
    pipe = load_pipeline(toy_file)
    assert pipe.name == pipe.model == "toy" and pipe.seed == 11
    assert [s.id for s in pipe.stages] == ["numbers", "train", "save"]  # default id = component name
    assert [s.plugin for s in pipe.stages] == ["toy", "toy", "toy"]
    train = pipe.stage("train")
    assert train.config.steps == 30 and train.config.lr == 0.5  # validated against the component's model
    assert train.component.ref == "optimizer.count"


def test_bad_toml_is_located(tmp_path, steps) -> None:
    p = write(tmp_path, '[pipeline]\nname = "x"\nseed = \n')
    with pytest.raises(PipelineError, match=r"invalid TOML: .*line 3") as e:
        load_pipeline(p)
    assert e.value.errors[0].startswith("invalid TOML")


def test_every_problem_is_listed_with_its_location(tmp_path, steps) -> None:
    p = write(tmp_path, """
[pipeline]
name = "toy"

[[stages]]
use = "data.numbers"
[stages.config]
n = "many"

[[stages]]
use = "optimizer.nope"

[[stages]]
id = "numbers"
use = "data.numbers"

[[stages]]
use = "optimizer.count"
[stages.config]
lr = "fast"
steps = 3
colour = "red"
""")
    with pytest.raises(PipelineError) as e:
        load_pipeline(p)
    errs = e.value.errors
    assert "stages[0].config.n: Input should be a valid integer, unable to parse string as an integer" in errs
    assert any(x.startswith("stages[1].use: no component optimizer.nope (available in stage optimizer: optimizer.count)")
               for x in errs)
    assert any(x.startswith("stages[2].id: duplicate stage id 'numbers' (also stages[0])") for x in errs)
    assert "stages[3].config.lr: Input should be a valid number, unable to parse string as a number" in errs
    assert "stages[3].config.colour: Extra inputs are not permitted" in errs
    assert len(errs) == 5
    assert e.value.message.startswith(f"{p}: 5 problems: ")


def test_structural_problems_are_located(tmp_path, steps) -> None:
    p = write(tmp_path, """
[pipeline]
name = "has space"
sede = 3

[[stages]]
use = "llama"

[[stages]]
config = {}
""")
    with pytest.raises(PipelineError) as e:
        load_pipeline(p)
    errs = e.value.errors
    assert any(x.startswith("pipeline.name: String should match pattern") for x in errs)
    assert "pipeline.sede: Extra inputs are not permitted" in errs
    assert any(x.startswith("stages[0].use: invalid component reference 'llama'") for x in errs)
    assert "stages[1].use: Field required" in errs


def test_no_stages_and_missing_tables(tmp_path, steps) -> None:
    with pytest.raises(PipelineError, match="stages: Field required"):
        load_pipeline(write(tmp_path, '[pipeline]\nname = "x"\n'))
    with pytest.raises(PipelineError, match="stages: List should have at least 1 item"):
        load_pipeline(write(tmp_path, 'stages = []\n[pipeline]\nname = "x"\n'))
    with pytest.raises(ValidationError, match="no pipeline file"):
        load_pipeline(tmp_path / "missing.toml")


def test_overrides(toy_file, steps) -> None:
    pipe = load_pipeline(toy_file, ["stages.train.config.steps=7", "pipeline.seed=3", "stages.0.config.n=2",
                                    "stages.save.config.tag=\"best\""])
    assert pipe.stage("train").config.steps == 7
    assert pipe.seed == 3
    assert pipe.stage("numbers").config.n == 2
    assert pipe.stage("save").config.tag == "best"
    assert pipe.data["stages"][1]["config"]["steps"] == 7  # what the run records


def test_override_errors_are_located(toy_file, steps) -> None:
    with pytest.raises(ValidationError, match=r"no stage with id 'trian' \(stages: numbers, train, save\)"):
        load_pipeline(toy_file, ["stages.trian.config.steps=7"])
    with pytest.raises(ValidationError, match="write KEY=VALUE"):
        load_pipeline(toy_file, ["pipeline.seed"])
    with pytest.raises(PipelineError, match=r"stages\[1\]\.config\.steps: Input should be a valid integer"):
        load_pipeline(toy_file, ["stages.train.config.steps=lots"])


def test_parse_value_is_toml() -> None:
    assert parse_value("3") == 3 and parse_value("1e-3") == 1e-3 and parse_value("true") is True
    assert parse_value('"x y"') == "x y" and parse_value("[1, 2]") == [1, 2]
    assert parse_value("plain") == "plain"  # not TOML: a bare string
    assert apply_overrides({"a": {}}, ["a.b.c=1"]) == {"a": {"b": {"c": 1}}}
