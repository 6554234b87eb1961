"""The registry API on SQLite and on a real PostgreSQL: versions, aliases, lineage,
per-tensor storage, checkout/export, gc/fsck, runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from registry_testtools import make_model, tensor, tree_bytes, write_safetensors

from llmos import hookimpl
from llmos.sdk import ConflictError, NotFoundError, ValidationError


def test_register_resolve_checkout_bit_identical(reg: Any, tmp_path: Path) -> None:
    src = make_model(tmp_path / "m1", [1, 2, 3])
    (src / "sub").mkdir()
    (src / "sub" / "notes.txt").write_text("nested file")
    v = reg.register_version("tiny", src, description="first", tags={"stage": "fp32"}, metrics={"val_ppl": 41.5})
    assert (v.model, v.number, v.ref, v.status) == ("tiny", 1, "tiny:1", "ready")
    assert {f["path"] for f in v.files} == {"config.json", "tokenizer.json", "model.safetensors", "sub/notes.txt"}
    assert {f["path"]: f["kind"] for f in v.files}["model.safetensors"] == "safetensors"
    assert v.size_bytes == sum(len(b) for b in tree_bytes(src).values())
    assert v.metrics == {"val_ppl": 41.5} and v.tags == {"stage": "fp32"} and v.description == "first"
    out = reg.checkout("tiny")
    assert out == reg.home / "checkouts" / "tiny" / "1"
    assert tree_bytes(out) == tree_bytes(src)
    assert reg.checkout("tiny:1") == out  # cached
    assert not os.access(out / "model.safetensors", os.W_OK) or os.geteuid() == 0
    assert (out / "model.safetensors").stat().st_mode & 0o222 == 0


def test_single_safetensors_file(reg: Any, tmp_path: Path) -> None:
    data = write_safetensors(tmp_path / "w.safetensors", {"w": tensor(5)}, metadata={"format": "pt"})
    v = reg.register_version("single", tmp_path / "w.safetensors")
    assert [f["path"] for f in v.files] == ["w.safetensors"]
    assert (reg.checkout("single") / "w.safetensors").read_bytes() == data


def test_real_safetensors_files_roundtrip(reg: Any, tmp_path: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    tensors = {
        "f32": np.arange(12, dtype=np.float32).reshape(3, 4),
        "f16": np.ones((5,), dtype=np.float16),
        "i64": np.array([1, -2, 3], dtype=np.int64),
        "u8": np.zeros((0,), dtype=np.uint8),  # an empty tensor
        "b": np.array([True, False]),
    }
    save_file(tensors, str(tmp_path / "model.safetensors"), metadata={"k": "v"})
    v = reg.register_version("np", tmp_path / "model.safetensors")
    out = reg.checkout(v.ref)
    assert (out / "model.safetensors").read_bytes() == (tmp_path / "model.safetensors").read_bytes()
    t = reg.tensors(v.ref)
    assert set(t) == set(tensors)
    assert t["f32"]["dtype"] == "F32" and t["f32"]["shape"] == [3, 4] and t["f32"]["size"] == 48
    assert t["u8"]["size"] == 0


def test_versions_numbered_and_never_reused(reg: Any, tmp_path: Path) -> None:
    src = make_model(tmp_path / "m", [1])
    for i in range(3):
        assert reg.register_version("seq", src).number == i + 1
    reg.delete("seq:3")
    assert reg.resolve("seq").number == 2
    assert reg.register_version("seq", src).number == 4
    with pytest.raises(NotFoundError, match="deleted"):
        reg.resolve("seq:3")
    numbers = [(v.number, v.status) for v in reg.list_versions("seq", include_deleted=True)]
    assert numbers == [(1, "ready"), (2, "ready"), (3, "deleted"), (4, "ready")]
    assert [v.number for v in reg.list_versions("seq")] == [1, 2, 4]


def test_per_tensor_dedup(reg: Any, tmp_path: Path) -> None:
    seeds = list(range(10))
    a = reg.register_version("dd", make_model(tmp_path / "a", seeds, n=1024))
    assert a.reused_bytes == 0 and a.stored_bytes == a.size_bytes
    same = reg.register_version("dd", make_model(tmp_path / "b", seeds, n=1024))
    assert same.stored_bytes == 0
    changed = reg.register_version("dd", make_model(tmp_path / "c", seeds[:9] + [99], n=1024))
    assert changed.stored_bytes == 1024 * 4  # exactly the one changed tensor
    d = reg.diff("dd:1", "dd:3")
    assert [c["name"] for c in d["tensors"]["changed"]] == ["layer9"]
    assert d["tensors"]["unchanged"] == 9 and not d["tensors"]["added"] and not d["tensors"]["removed"]
    assert d["files"]["changed"] == ["model.safetensors"]


def test_aliases_and_notifications_after_commit(reg: Any, plugin_manager: Any, tmp_path: Path) -> None:
    from llmos_registry import open_registry

    seen: list[tuple[str, Any]] = []

    class Watcher:
        LLMOS_API = 2

        @hookimpl
        def llmos_after_version_registered(self, version: Any) -> None:
            # committed: another connection already sees it
            seen.append(("registered", open_registry().resolve(version.ref).ref))

        @hookimpl
        def llmos_after_alias_moved(self, model: str, alias: str, old_version: Any, new_version: Any) -> None:
            seen.append(("alias", (model, alias, old_version, new_version)))

    plugin_manager.register(Watcher(), name="watcher")
    src = make_model(tmp_path / "m", [1])
    reg.register_version("al", src, aliases=["canary"])
    reg.register_version("al", src)
    info = reg.set_alias("al", "production", 1)
    assert info.aliases == ["canary", "production"]
    reg.set_alias("al", "production", "2")
    assert reg.resolve("al@production").number == 2
    assert reg.resolve("al@canary").number == 1
    assert reg.resolve("al@v1").number == 1 and reg.resolve("al@latest").number == 2
    assert reg.remove_alias("al", "canary") == 1
    with pytest.raises(NotFoundError, match="no alias 'canary'"):
        reg.resolve("al@canary")
    reg.delete("al:2")  # removes the alias pointing at it
    with pytest.raises(NotFoundError):
        reg.resolve("al@production")
    assert seen == [
        ("registered", "al:1"),
        ("alias", ("al", "canary", None, 1)),
        ("registered", "al:2"),
        ("alias", ("al", "production", None, 1)),
        ("alias", ("al", "production", 1, 2)),
        ("alias", ("al", "canary", 1, None)),
        ("alias", ("al", "production", 2, None)),
    ]
    kinds = [e["kind"] for e in reg.events(limit=20)]
    assert kinds.count("version.registered") == 2 and "version.deleted" in kinds


def test_alias_rules(reg: Any, tmp_path: Path) -> None:
    reg.register_version("ar", make_model(tmp_path / "m", [1]))
    for bad in ("latest", "v3", "has space", "a@b", ""):
        with pytest.raises(ValidationError):
            reg.set_alias("ar", bad, 1)
    with pytest.raises(NotFoundError, match="no version 7"):
        reg.set_alias("ar", "prod", 7)
    reg.delete("ar:1")
    with pytest.raises(NotFoundError, match="deleted"):
        reg.set_alias("ar", "prod", 1)


def test_set_alias_compare_and_swap(reg: Any, tmp_path: Path) -> None:
    """``expect``: the alias moves only if it points there now; ``previous_as`` and the
    event change in the same transaction, or nothing does."""
    src = make_model(tmp_path / "m", [1])
    for _ in range(3):
        reg.register_version("cas", src)
    with pytest.raises(ConflictError, match="cas@prod is unset, not 2 as when it was read"):
        reg.set_alias("cas", "prod", 1, expect=2)
    reg.set_alias("cas", "prod", 1, expect=None, event=("test.moved", "cas:1", {"n": 1}))
    with pytest.raises(ConflictError, match="points at version 1, not unset"):
        reg.set_alias("cas", "prod", 2, expect=None, previous_as="prod-old", event=("test.moved", "cas:2", {}))
    assert reg.resolve("cas@prod").number == 1 and "prod-old" not in reg.resolve("cas:1").aliases
    assert [e["subject"] for e in reg.events(kind="test.moved")] == ["cas:1"]  # the refused move left no event
    reg.set_alias("cas", "prod", 3, expect=1, previous_as="prod-old")
    assert (reg.resolve("cas@prod").number, reg.resolve("cas@prod-old").number) == (3, 1)
    with pytest.raises(ConflictError, match="points at version 3, not 1"):
        reg.record_event("test.decided", "cas:2", {}, alias_at=("cas", "prod", 1))
    reg.record_event("test.decided", "cas:2", {}, alias_at=("cas", "prod", 3))
    assert [e["subject"] for e in reg.events(kind="test.decided")] == ["cas:2"]


def test_tags_metrics_archive(reg: Any, tmp_path: Path) -> None:
    src = make_model(tmp_path / "m", [1])
    reg.register_version("tm", src, tags={"a": "1", "b": "2"})
    reg.register_version("tm", src)
    assert reg.set_tags("tm:1", {"a": "9", "c": "3"}, remove=["b"]).tags == {"a": "9", "c": "3"}
    reg.log_metrics("tm:1", {"val_ppl": 10})
    assert reg.log_metrics("tm:1", {"val_ppl": 9.5, "tok_s": 800}).metrics == {"val_ppl": 9.5, "tok_s": 800.0}
    reg.archive("tm:2")
    assert reg.resolve("tm").number == 1  # latest skips archived
    assert reg.resolve("tm:2").status == "archived"
    assert reg.checkout("tm:2").is_dir()  # still loadable by number
    reg.restore("tm:2")
    assert reg.resolve("tm").number == 2
    models = reg.list_models()
    assert [(m["name"], m["versions"], m["latest"]) for m in models] == [("tm", 2, 2)]


def test_lineage_tree_and_diff_metrics(reg: Any, tmp_path: Path) -> None:
    rid = reg.create_run("quickstart", {"lr": 1e-3})
    base = reg.register_version("lin", make_model(tmp_path / "a", [1, 2]), metrics={"val_ppl": 50.0})
    other = reg.register_version("other", make_model(tmp_path / "o", [7]))
    q = reg.register_version(
        "lin", make_model(tmp_path / "b", [1, 3]), parents=[base.ref, "other"], metrics={"val_ppl": 52.5},
        lineage={"run_id": rid, "method": "int8_dynamic", "settings": {"bits": 8}, "data": {"corpus": "x"}},
    )
    assert q.parents == ["lin:1", "other:1"] and q.run_id == rid and q.lineage["method"] == "int8_dynamic"
    tree = reg.lineage("lin:2")
    assert tree["ref"] == "lin:2" and tree["method"] == "int8_dynamic"
    assert [p["ref"] for p in tree["parents"]] == ["lin:1", "other:1"]
    assert reg.lineage("lin:1")["children"] == ["lin:2"]
    assert reg.get_run(rid).versions == ["lin:2"]
    d = reg.diff("lin:1", "lin:2")
    assert d["metrics"]["val_ppl"] == {"a": 50.0, "b": 52.5, "delta": 2.5}
    assert [c["name"] for c in d["tensors"]["changed"]] == ["layer1"]
    assert other.ref == "other:1"


def test_export_hf_and_plugin_exporter(reg: Any, plugin_manager: Any, tmp_path: Path) -> None:
    src = make_model(tmp_path / "m", [1, 2])
    reg.register_version("ex", src)
    files = reg.export("ex", tmp_path / "out")
    assert tree_bytes(tmp_path / "out") == tree_bytes(src)
    assert sorted(p.name for p in files) == ["config.json", "model.safetensors", "tokenizer.json"]
    with pytest.raises(ConflictError, match="not an empty directory"):
        reg.export("ex", tmp_path / "out")
    from llmos_registry.cli.model_export import export_version  # the CLI layer resolves non-HF formats, not the registry

    with pytest.raises(ValidationError, match="exports only hf and safetensors"):
        reg.export("ex", tmp_path / "o2", format="upper")
    with pytest.raises(NotFoundError, match="no exporter for format 'nope'"):
        export_version(reg, "ex", tmp_path / "o2", format="nope")
    assert not (tmp_path / "o2").exists()

    class Upper:
        def __init__(self, cfg: Any) -> None:
            self.cfg = cfg

        def export(self, version_dir: Path, out_dir: Path) -> list[Path]:
            out = out_dir / "config.upper"
            out.write_text((version_dir / "config.json").read_text().upper() + self.cfg.suffix)
            return [out]

    import pydantic

    class UpperConfig(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        suffix: str = ""

    class ExportPlugin:
        LLMOS_API = 2

        @hookimpl
        def llmos_register_deployment_steps(self, register: Any) -> None:
            register("upper", Upper, config=UpperConfig, description="test exporter")

    plugin_manager.register(ExportPlugin(), name="upper-export")
    paths = export_version(reg, "ex", tmp_path / "o3", format="upper", settings={"suffix": "!"})
    assert paths == [tmp_path / "o3" / "config.upper"]
    assert paths[0].read_text().endswith("}!") and '"MODEL_TYPE"' in paths[0].read_text()
    with pytest.raises(ValidationError, match="suffix|bogus"):
        export_version(reg, "ex", tmp_path / "o4", format="upper", settings={"bogus": 1})


def test_gc_and_fsck(reg: Any, tmp_path: Path) -> None:
    reg.register_version("g", make_model(tmp_path / "a", [1, 2]))
    reg.register_version("g", make_model(tmp_path / "b", [1, 3]))
    assert reg.fsck()["ok"]
    reg.delete("g:2")
    assert reg.gc(grace_seconds=3600)["removed_blobs"] == 0  # too recent
    dry = reg.gc(grace_seconds=0, dry_run=True)
    assert dry["removed_blobs"] == 1
    result = reg.gc(grace_seconds=0)
    assert result["removed_blobs"] == 1 and result["removed_bytes"] == 64 * 4
    assert tree_bytes(reg.checkout("g:1")) == tree_bytes(tmp_path / "a")
    # corrupt one blob and remove another: fsck reports both, with who uses them
    blobs = sorted(reg.blobs.iter_digests())
    (d1, p1), (d2, p2) = blobs[0], blobs[1]
    os.chmod(p1, 0o644)
    p1.write_bytes(b"garbage")
    p2.unlink()
    report = reg.fsck()
    assert not report["ok"]
    assert [c["sha256"] for c in report["corrupt"]] == [d1]
    assert [m["sha256"] for m in report["missing"]] == [d2]
    assert report["missing"][0]["used_by"] and report["missing"][0]["used_by"][0].startswith("g:1/")


def test_checkout_of_missing_blob_is_clear(reg: Any, tmp_path: Path) -> None:
    from llmos.sdk import LlmosError

    v = reg.register_version("mb", make_model(tmp_path / "a", [1]))
    for _, path in reg.blobs.iter_digests():
        path.unlink()
    with pytest.raises(LlmosError, match="missing.*llmos model fsck"):
        reg.checkout(v.ref)
    assert not (reg.home / "checkouts" / "mb" / "1").exists()
    assert not [p for p in (reg.home / "checkouts" / "mb").iterdir()]  # no half-built directory


def test_runs(reg: Any) -> None:
    parent = reg.create_run("quickstart", {"a": 1}, {"llmos-data": "0.1.0"})
    rid = reg.create_run("quickstart", config={"lr": 0.1}, plugins={}, parent_run=parent, workdir="/tmp/x")
    rows = [("train", step, "loss", 5.0 - step * 0.1, 1000.0 + step) for step in range(50)]
    assert reg.log_run_metrics(rid, rows) == 50
    reg.log_run_metrics(rid, [{"kind": "eval", "step": 49, "name": "val_ppl", "value": 30.0}])
    reg.log_run_stage(rid, "train", "optimizer.loop", "completed", 1.5, {"steps": 50})
    reg.finish_run(rid, "completed", {"val_ppl": 30.0})
    run = reg.get_run(rid)
    assert run.status == "completed" and run.parent_run_id == parent and run.summary == {"val_ppl": 30.0}
    assert run.stages == [{"stage_id": "train", "component": "optimizer.loop", "status": "completed",
                           "duration_s": 1.5, "result": {"steps": 50}}]
    assert run.finished_at is not None and run.duration_s is not None and run.duration_s >= 0
    loss = reg.run_metrics(rid, "loss")
    assert [p["step"] for p in loss] == list(range(50)) and loss[0]["value"] == 5.0
    assert reg.run_metrics(rid, kind="eval")[0]["value"] == 30.0
    assert {r.id for r in reg.list_runs()} == {rid, parent}
    assert [r.id for r in reg.list_runs(parent_run=parent)] == [rid]
    reg.finish_run(parent, "running", {"resumed": True})  # reopened to resume: not finished
    assert reg.get_run(parent).finished_at is None and reg.get_run(parent).summary == {"resumed": True}
    reg.finish_run(parent, "failed")
    assert reg.get_run(parent).finished_at is not None
    assert [r.id for r in reg.list_runs(status="completed")] == [rid]
    with pytest.raises(NotFoundError):
        reg.get_run("nope")
    with pytest.raises(NotFoundError):
        reg.log_run_metrics("nope", rows[:1])
    with pytest.raises(NotFoundError):
        reg.create_run("x", parent_run="nope")
    assert reg.get_run(rid).to_dict()["id"] == rid


def test_session_and_orm_for_other_modules(reg: Any) -> None:
    from sqlalchemy import select

    from llmos_registry.models import Contributor, InstalledPlugin, Review, Submission

    with reg.session(write=True) as s:
        s.add(Contributor(handle="ada", name="Ada", roles=["maintainer"]))
        sub = Submission(plugin_name="llmos-x", version="1.0", kind="new-plugin", author="bob", manifest_digest="d1")
        s.add(sub)
        s.flush()
        s.add(Review(submission_id=sub.id, reviewer="ada", decision="approve", digest="d1"))
        s.add(InstalledPlugin(name="llmos-x", version="1.0", source="index", sha256="ab" * 32))
    with reg.session() as s:
        assert s.scalar(select(Contributor.roles).where(Contributor.handle == "ada")) == ["maintainer"]
        assert s.scalar(select(Review.decision)) == "approve"
    with pytest.raises(Exception):
        with reg.session(write=True) as s:
            s.add(Contributor(handle="ada"))  # unique handle: the whole transaction rolls back
    info = reg.info()
    assert info["revision"] == info["head"] and info["counts"]["contributors"] == 1


def test_head_revision_constant_matches_alembic() -> None:
    from llmos_registry import db

    assert db.HEAD_REVISION == db.head_revision(), "update HEAD_REVISION in plugins/llmos-registry/llmos_registry/db.py"


def test_models_match_migrations(db_url: str, reg: Any) -> None:
    """The ORM models and the migrations describe the same schema (autogenerate finds nothing)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from llmos_registry.models import Base

    with reg.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_first_open_migrates_once(backend: str, llmos_home: Path, request: pytest.FixtureRequest) -> None:
    """Processes opening a brand-new database at once: one migrates, the others wait."""
    import subprocess
    import sys

    env = dict(os.environ, LLMOS_HOME=str(llmos_home), LLMOS_PLUGINS="llmos-registry")
    env.pop("LLMOS_DATABASE_URL", None)
    if backend == "postgres":
        env["LLMOS_DATABASE_URL"] = request.getfixturevalue("postgres_database")
    code = "from llmos_registry import open_registry; print(open_registry().info()['revision'])"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 3, [e for _, e in outs]
    from llmos_registry import db

    assert [o.strip() for o, _ in outs] == [db.HEAD_REVISION] * 3


def test_registry_usable_after_fork(sqlite_reg: Any, tmp_path: Path) -> None:
    """A forked child (DDP workers, server workers) gets its own connections."""
    import multiprocessing

    sqlite_reg.register_version("fork", make_model(tmp_path / "a", [1]))
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()

    def child(q: Any) -> None:
        from llmos_registry import open_registry

        reg = open_registry()
        v = reg.register_version("fork", tmp_path / "a")
        q.put((reg.resolve("fork:1").ref, v.ref))

    p = ctx.Process(target=child, args=(q,))
    p.start()
    p.join(60)
    assert p.exitcode == 0 and q.get(timeout=5) == ("fork:1", "fork:2")
    assert sqlite_reg.resolve("fork").number == 2


def test_timestamps_are_utc_aware(reg: Any, tmp_path: Path) -> None:
    import datetime as dt

    from sqlalchemy import select

    from llmos_registry.models import Event, Run

    before = dt.datetime.now(dt.timezone.utc)
    v = reg.register_version("ts", make_model(tmp_path / "a", [1]))
    rid = reg.create_run("p")
    with reg.session() as s:
        started = s.scalar(select(Run.started_at).where(Run.id == rid))
        event_ts = s.scalar(select(Event.ts).order_by(Event.id.desc()).limit(1))
    for value in (reg.resolve(v.ref).created_at, started, event_ts):
        assert value.tzinfo is not None and value.utcoffset() == dt.timedelta(0)
        assert abs((value - before).total_seconds()) < 120


def test_registry_modules_stay_small() -> None:
    """The registry is small modules behind a thin facade (issue 17.1): none over 600 lines."""
    import llmos_registry

    root = Path(llmos_registry.__file__).parent
    sizes = {p.name: len(p.read_text().splitlines()) for p in root.glob("*.py")}
    assert sizes and max(sizes.values()) <= 600, sizes
    assert sizes["api.py"] <= 300  # the facade only delegates


def test_open_registry_notify_is_injected(db_url: str, tmp_path: Path) -> None:
    from llmos_registry import open_registry

    calls: list[tuple[str, dict[str, Any]]] = []
    reg = open_registry(notify=lambda hook, **kw: calls.append((hook, kw)))
    v = reg.register_version("n", make_model(tmp_path / "a", [1]), aliases=["canary"])
    reg.set_alias("n", "production", 1)
    assert [c[0] for c in calls] == ["llmos_after_version_registered", "llmos_after_alias_moved",
                                     "llmos_after_alias_moved"]
    assert calls[0][1]["version"].ref == v.ref and calls[2][1]["alias"] == "production"
