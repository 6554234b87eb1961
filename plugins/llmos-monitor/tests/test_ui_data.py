"""Server-side pieces of the dashboard: lineage graph, diff tables, JSON API errors."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient


def _v(n: int, parents: list[str], aliases: list[str] | None = None) -> dict[str, Any]:
    return {"model": "m", "number": n, "ref": f"m:{n}", "parents": parents, "aliases": aliases or [],
            "status": "ready", "tags": {}}


def test_lineage_graph_nodes_edges_and_layout() -> None:
    from llmos_monitor.ui.data import lineage_svg

    model = {"name": "m", "versions": [_v(1, []), _v(2, ["m:1"], ["production"]), _v(3, ["m:2", "teacher:4"])]}
    svg = lineage_svg(model)
    nodes = re.findall(r'<g class="node (\w+)" data-ref="([^"]+)"><rect x="(\d+)" y="(\d+)"', svg)
    refs = {ref: (status, int(x), int(y)) for status, ref, x, y in nodes}
    assert set(refs) == {"m:1", "m:2", "m:3", "teacher:4"}
    assert refs["teacher:4"][0] == "external"  # a parent from another model
    assert refs["m:1"][1] < refs["m:2"][1] < refs["m:3"][1]  # generations left to right
    assert refs["teacher:4"][1] == refs["m:1"][1]
    edges = set(re.findall(r'data-from="([^"]+)" data-to="([^"]+)"', svg))
    assert edges == {("m:1", "m:2"), ("m:2", "m:3"), ("teacher:4", "m:3")}
    assert 'data-ref="m:2"' in svg and "production" in svg.split('data-ref="m:2"')[1].split("</g>")[0]


def test_diff_tables_from_a_registry_diff() -> None:
    from llmos_monitor.ui.data import diff_tables

    diff = {
        "a": "m:1", "b": "m:2",
        "tensors": {"changed": [{"name": "w", "a": {"dtype": "F32", "shape": [4, 4], "size": 64},
                                 "b": {"dtype": "I8", "shape": [4, 4], "size": 16}}],
                    "added": [{"name": "w.scale", "dtype": "F32", "shape": [4], "size": 16}],
                    "removed": [], "unchanged": 3},
        "files": {"added": [], "removed": [], "changed": ["model.safetensors"]},
        "size": {"a": 100, "b": 68, "delta": -32, "shared_tensor_bytes": 20},
        "metrics": {"val_ppl": {"a": 10.0, "b": 10.5, "delta": 0.5}},
    }
    tables, summary = diff_tables(diff)
    t = dict(tables)
    assert [(r["tensor"], r["change"], r["size delta"]) for r in t["tensors"]] == [("w", "changed", -48),
                                                                                   ("w.scale", "added", 16)]
    assert t["tensors"][0]["b"] == "I8 [4×4] 16 B"
    assert t["files"] == [{"file": "model.safetensors", "change": "changed"}]
    assert t["metrics"] == [{"metric": "val_ppl", "parent": 10.0, "this": 10.5, "delta": 0.5}]
    assert summary["tensors unchanged"] == 3 and summary["size delta (bytes)"] == -32


def test_json_api_errors_are_json(llmos_home: Any) -> None:
    from llmos_monitor.ui.app import create_app

    client = TestClient(create_app(), base_url="http://localhost")
    r = client.get("/api/runs/nope")
    assert r.status_code == 404 and "does not exist" in r.json()["error"]
    r = client.get("/api/models/nope")
    assert r.status_code == 404 and "no model named 'nope'" in r.json()["error"]
    assert client.get("/api/runs").json() == []
    assert client.get("/favicon.ico").headers["content-type"].startswith("image/svg+xml")
