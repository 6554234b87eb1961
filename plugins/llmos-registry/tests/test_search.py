"""Registry search (issue 16.4): ``llmos model search FILTER`` and ``Registry.search``,
on SQLite and PostgreSQL, and a property test comparing the SQL with a Python
evaluation of the same filter."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_testtools import make_model

from llmos.cli import main
from llmos.sdk import ValidationError
from llmos_registry import search as S


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_model_search_cli(reg: Any, tmp_path: Path) -> None:
    src = make_model(tmp_path / "m", [1])
    reg.register_version("chat", src, metrics={"val_ppl": 41.5}, tags={"team": "nlp"}, aliases=["production"])
    reg.register_version("chat", src, metrics={"val_ppl": 60}, tags={"team": "nlp"})
    reg.register_version("vision", src, metrics={"val_ppl": 30}, tags={"team": "cv"})
    reg.register_version("plain", src)
    r = cli("model", "search", "metrics.val_ppl < 50 and tags.team = 'nlp'", "--json")
    assert r.exit_code == 0, r.output
    assert [v["ref"] for v in json.loads(r.stdout)] == ["chat:1"]
    r = cli("model", "search", "not tags.team = 'nlp' or aliases = 'production'")
    assert r.exit_code == 0 and "chat:1" in r.stdout and "vision:1" in r.stdout and "plain:1" in r.stdout
    assert "chat:2" not in r.stdout
    found = [v.ref for v in reg.search("name like 'CH%' and (version >= 2 or metrics.val_ppl <= 41.5)")]
    assert found == ["chat:2", "chat:1"]  # newest first
    assert [v.ref for v in reg.search("created_at >= '2000-01-01' and status = 'ready'", limit=2)] == ["plain:1", "vision:1"]
    reg.delete("plain:1")
    assert reg.search("name = 'plain'") == [] and [v.status for v in reg.search("name = 'plain'", include_deleted=True)] == ["deleted"]
    assert "No version matches." in cli("model", "search", "metrics.nope > 0").stdout


@pytest.mark.parametrize(
    "query, message",
    [
        ("metrics.val_ppl < 50 and (tags.team = 'nlp'", "at column 44: expected ')'"),
        ("metrics.val_ppl <", "at column 18: expected a value"),
        ("metrics.val_ppl 50", "at column 17: expected an operator"),
        ("metricz.x < 1", "at column 1: unknown field 'metricz.x'"),
        ("tags.team = nlp", "at column 13: expected a value"),
        ("tags.team = 5", "at column 13: tags.team is text: quote the value"),
        ("version = '3'", "at column 11: version is a number"),
        ("created_at > 'yesterday'", "at column 14: 'yesterday' is not an ISO date"),
        ("name = 'a' or", "at column 14: expected a field"),
        ("name = 'a' name = 'b'", "at column 12: expected 'and', 'or' or the end"),
        ("name = 'a' ; drop table models", "at column 12: unexpected ';'"),
        ("metrics.x < 1e999", "at column 13: 1e999 is not a finite number"),
        ("(" * 60 + "name = 'a'" + ")" * 60, "nested more than 50 deep"),
        ("", "empty search filter"),
    ],
)
def test_search_errors_are_one_line_with_the_column(sqlite_reg: Any, query: str, message: str) -> None:
    r = cli("model", "search", query)
    assert r.exit_code != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], r.stderr


# -- property: SQL == Python --------------------------------------------------------------

TEXT = st.text("ab", max_size=2)
FIELDS_NUM = ["metrics.a", "metrics.b", "version", "size_bytes"]
FIELDS_TEXT = ["tags.t", "tags.u", "aliases", "name", "status"]


def quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


comparison = st.one_of(
    st.tuples(st.sampled_from(FIELDS_NUM), st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
              st.integers(-1, 4).map(str) | st.sampled_from(["0.5", "2.5", "1e1"])),
    st.tuples(st.sampled_from(FIELDS_TEXT), st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), TEXT.map(quote)),
    st.tuples(st.sampled_from(FIELDS_TEXT), st.just("like"), st.text("ab%_", max_size=3).map(quote)),
).map(lambda t: " ".join(t))
filters = st.recursive(
    comparison,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or", "AND", "Or"]), inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        inner.map(lambda f: f"not {f}"),
        inner.map(lambda f: f"({f})"),
    ),
    max_leaves=6,
)


@pytest.fixture
def population(reg: Any, tmp_path: Path) -> Any:
    """Versions with a mix of metrics, tags and aliases (some missing)."""
    import random

    rnd = random.Random(7)
    src = make_model(tmp_path / "m", [1])
    for i in range(14):
        name = ["a", "b", "ab"][i % 3]
        metrics = {k: rnd.choice([0, 1, 2, 2.5, 3]) for k in ("a", "b") if rnd.random() < 0.7}
        tags = {k: rnd.choice(["", "a", "b", "ab", "ba"]) for k in ("t", "u") if rnd.random() < 0.7}
        aliases = [a for a in ("a", "b", "ab") if rnd.random() < 0.3]
        v = reg.register_version(name, src, metrics=metrics, tags=tags)
        for alias in aliases:
            reg.set_alias(name, alias, v.number)
        if i % 5 == 4:
            reg.archive(v.ref)
    return reg


def matches(node: Any, version: Any) -> bool:
    """Does ``version`` satisfy the parsed filter? The reference semantics of
    :func:`llmos_registry.search.to_sql`, evaluated in Python, for the property test."""
    if isinstance(node, S.BoolOp):
        if node.op == "not":
            return not matches(node.args[0], version)
        results = (matches(a, version) for a in node.args)
        return all(results) if node.op == "and" else any(results)
    f, op, v = node.field, node.op, node.value
    if f.startswith("metrics."):
        return f[8:] in version.metrics and _py_compare(version.metrics[f[8:]], op, v)
    if f.startswith("tags."):
        return f[5:] in version.tags and _py_compare(version.tags[f[5:]], op, v)
    if f == "aliases":
        return any(_py_compare(a, op, v) for a in version.aliases)
    actual = {"name": version.model, "version": version.number, "status": version.status,
              "description": version.description, "run_id": version.run_id, "created_at": version.created_at,
              "size_bytes": version.size_bytes}[f]
    return actual is not None and _py_compare(actual, op, v)


def _py_compare(a: Any, op: str, b: Any) -> bool:
    if op == "like":
        pattern = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in b)
        return re.fullmatch(pattern, a, re.DOTALL | re.IGNORECASE) is not None
    return {"=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(query=filters)
def test_search_equals_python_evaluation(population: Any, query: str) -> None:
    every = population.search("version >= 0", limit=1000)
    assert len(every) == 14
    want = sorted(v.ref for v in every if matches(S.parse(query), v))
    assert sorted(v.ref for v in population.search(query, limit=1000)) == want, query


@given(st.text(max_size=40))
@settings(max_examples=200, deadline=None)
def test_parser_never_raises_anything_else(text: str) -> None:
    try:
        S.to_sql(S.parse(text))
    except ValidationError as exc:
        assert "\n" not in exc.message


def test_tag_values_are_capped_on_write(reg: Any, tmp_path: Path) -> None:
    """Tags are indexed by (key, value): an over-long value is a one-line error, nothing written."""
    from llmos_registry.refs import MAX_TAG_VALUE

    src = make_model(tmp_path / "m", [1])
    reg.register_version("capped", src, tags={"note": "x" * MAX_TAG_VALUE})
    r = cli("model", "tag", "capped:1", "note=" + "y" * (MAX_TAG_VALUE + 1), "other=1")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert f"tag 'note' is {MAX_TAG_VALUE + 1} characters long; tag values are at most {MAX_TAG_VALUE}" in r.output
    assert reg.resolve("capped:1").tags == {"note": "x" * MAX_TAG_VALUE}  # unchanged, 'other' not set either
    with pytest.raises(ValidationError, match="at most"):
        reg.register_version("capped", src, tags={"note": "z" * 10_000})
    assert len(reg.list_versions("capped")) == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_index_migration_refuses_over_long_tags(backend: str, llmos_home: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """A database from before the cap, with a tag too long to index: opening it names the
    tag and leaves the database as it was (0005); once shortened, it migrates."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from llmos.sdk import LlmosError
    from llmos_registry import db, open_registry

    url = f"sqlite:///{tmp_path / 'old.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_database")
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    cfg = db.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
        conn.execute(text("INSERT INTO models (id, name, name_key, description, last_version, created_at) "
                          "VALUES (1, 'old', 'old', '', 1, '2026-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO model_versions (id, model_id, number, status, description, size_bytes, lineage, "
                          "created_at) VALUES (1, 1, 1, 'ready', '', 0, '{}', '2026-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO tags (version_id, key, value) VALUES (1, 'essay', :v)"), {"v": "w" * 3000})
    monkeypatch.setenv("LLMOS_DATABASE_URL", url)
    with pytest.raises(LlmosError, match=r"old:1 tag 'essay' \(3000 characters\)"):
        open_registry()
    assert db.current_revision(engine) == "0005"
    with engine.begin() as conn:
        conn.execute(text("UPDATE tags SET value = 'short'"))
    db.dispose_engines()
    assert open_registry().resolve("old:1").tags == {"essay": "short"}
    assert db.current_revision(engine) == db.HEAD_REVISION
    engine.dispose()
    db.dispose_engines()


def test_sqlite_query_plans_use_the_covering_indexes(sqlite_reg: Any) -> None:
    """What the search benchmark relies on: an and-ed tag or metric filter reads its
    covering index; under or/not the versions are walked newest first (no sort)."""
    from sqlalchemy import and_, select

    from llmos_registry.models import Model, ModelVersion

    def plan(query: str) -> str:
        stmt = (select(ModelVersion.id).join(Model, Model.id == ModelVersion.model_id)
                .where(and_(S.to_sql(S.parse(query)), ModelVersion.status != "deleted"))
                .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc()).limit(100))
        with sqlite_reg.session() as s:
            sql = str(stmt.compile(s.get_bind(), compile_kwargs={"literal_binds": True}))
            return " | ".join(r[3] for r in s.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql))

    p = plan("metrics.val_ppl < 50 and tags.team = 'nlp'")
    assert "COVERING INDEX ix_version_metrics_name_value (name=? AND value<?)" in p, p
    assert "COVERING INDEX ix_tags_key_value (key=? AND value=?)" in p, p
    p = plan("not tags.team = 'nlp' and (metrics.tok_s > 990 or tags.stage like 'int%')")
    assert "SCAN model_versions USING INDEX ix_model_versions_created_at" in p and "TEMP B-TREE" not in p, p
