"""Property tests: name normalization, look-alikes, and version ordering in resolution."""

from __future__ import annotations

import re
import string

from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from llmos_community import names

FAST = settings(max_examples=150, deadline=None)

alnum = st.sampled_from(string.ascii_letters + string.digits)
seps = st.sampled_from(["-", "_", ".", "--", "_.", "-_-"])


@st.composite
def valid_names(draw):
    parts = draw(st.lists(st.text(alnum, min_size=1, max_size=8), min_size=1, max_size=4))
    out = parts[0]
    for p in parts[1:]:
        out += draw(seps) + p
    return out


@FAST
@given(valid_names())
def test_valid_names_normalize_to_pep503(name):
    assert names.is_valid(name)
    n = names.normalize(name)
    assert n == names.normalize(n)  # idempotent
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", n)
    assert names.same_name(name, n) and names.same_name(name.upper(), name)


@FAST
@given(valid_names(), seps)
def test_separator_runs_and_case_do_not_make_a_new_name(name, sep):
    variant = re.sub(r"[-_.]+", sep, name).swapcase()
    assert names.normalize(variant) == names.normalize(name)
    assert names.lookalike_reason(variant, name) is None  # the same name, not a look-alike


@FAST
@given(valid_names())
def test_confusable_letters_fold_together(name):
    swapped = name.lower().replace("l", "1").replace("o", "0").replace("i", "l")
    assert names.ultra_normalize(swapped) == names.ultra_normalize(name)
    assert names.same_name(swapped, name)


@FAST
@given(st.text(st.sampled_from("abcdefgh"), min_size=4, max_size=10), st.data())
def test_one_edit_is_a_lookalike(core, data):
    i = data.draw(st.integers(0, len(core) - 1))
    op = data.draw(st.sampled_from(["drop", "repeat", "swap", "replace"]))
    if op == "drop":
        other = core[:i] + core[i + 1:]
    elif op == "repeat":
        other = core[:i] + core[i] + core[i:]
    elif op == "swap" and i + 1 < len(core):
        other = core[:i] + core[i + 1] + core[i] + core[i + 2:]
    else:
        other = core[:i] + ("z" if core[i] != "z" else "y") + core[i + 1:]
    if other == core or len(other) < 4:
        return
    assert names.edit_distance(core, other) == 1
    assert names.lookalike_reason("llmos-" + other, "llmos-" + core) is not None


@FAST
@given(st.text(alnum, max_size=12), st.text(alnum, max_size=12))
def test_edit_distance_is_a_metric(a, b):
    d = names.edit_distance(a, b)
    assert d == names.edit_distance(b, a)
    assert (d == 0) == (a == b)
    assert d <= max(len(a), len(b))
    assert names.edit_distance(a, b, limit=2) == min(d, 3)


def test_prefix_suffix_and_word_order_games():
    assert "prefix" in names.lookalike_reason("llmos-tokenizer", "tokenizer")
    assert "prefix" in names.lookalike_reason("tokenizer-plugin", "llmos-tokenizer")
    assert "order" in names.lookalike_reason("llmos-sink-jsonl", "llmos-jsonl-sink")
    assert names.lookalike_reason("llmos-data", "llmos-train") is None
    assert names.lookalike_reason("llmos-serve", "llmos-models") is None


# -- versions ------------------------------------------------------------------------

versions = st.builds(
    lambda rel, pre: ".".join(map(str, rel)) + (f"{pre[0]}{pre[1]}" if pre else ""),
    st.lists(st.integers(0, 20), min_size=1, max_size=3),
    st.none() | st.tuples(st.sampled_from(["a", "b", "rc"]), st.integers(0, 3)),
)


def _index_with(tmp_path, released: dict[str, bool]):
    """A minimal (unsigned) index with one plugin whose versions are ``{version: yanked}``."""
    import tomli_w

    from llmos_community.index import DirSource, load_index

    d = tmp_path / "plugins" / "demo"
    (d / "versions").mkdir(parents=True, exist_ok=True)
    (d / "plugin.toml").write_text(tomli_w.dumps({
        "name": "demo", "summary": "s", "license": "MIT", "authors": [{"name": "a"}],
        "maintainers": [{"handle": "a", "public_key": "x"}], "urls": {"source": "https://example.org"},
        "stages": ["data"], "api_versions": [1], "security_contact": "a@example.org", "added": "2026-01-01",
    }).replace('"2026-01-01"', "2026-01-01"))
    for v, yanked in released.items():
        doc = {"version": v, "released": "2026-01-01", "entry_points": {"demo": "demo.plugin"},
               "artifact": {"url": f"demo-{v}-py3-none-any.whl", "sha256": "0" * 64, "size": 1},
               "source": {"repository": "https://example.org", "commit": "abcdef0"}}
        if yanked:
            doc.update(yanked=True, yanked_reason="bad")
        (d / "versions" / f"{v}.toml").write_text(tomli_w.dumps(doc).replace('"2026-01-01"', "2026-01-01"))
    return load_index(DirSource(tmp_path))


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(versions, st.booleans(), min_size=1, max_size=6))
def test_resolver_picks_highest_non_yanked(tmp_path_factory, released):
    from llmos_community.resolver import resolve

    released = {str(Version(v)): y for v, y in released.items()}
    idx = _index_with(tmp_path_factory.mktemp("idx"), released)
    live = [Version(v) for v, y in released.items() if not y]
    final_live = [v for v in live if not v.is_prerelease]
    if not live:
        try:
            resolve(idx, "demo", verify=False)
        except Exception as exc:  # noqa: BLE001
            assert "yanked" in str(exc)
        else:
            raise AssertionError("resolved with every version yanked")
        return
    # PEP 440: pre-releases only when nothing else is available
    expected = max(final_live) if final_live else max(live)
    assert resolve(idx, "demo", verify=False).version == str(expected)
    # a yanked version is installable when pinned exactly
    for v, y in released.items():
        if y:
            assert resolve(idx, f"demo=={v}", verify=False).yanked


def test_prereleases_only_when_asked(tmp_path):
    from llmos_community.resolver import resolve

    idx = _index_with(tmp_path, {"1.0.0": False, "2.0.0rc1": False})
    assert resolve(idx, "demo", verify=False).version == "1.0.0"
    assert resolve(idx, "demo>=2.0.0rc1", verify=False).version == "2.0.0rc1"


@settings(max_examples=60, deadline=None)
@given(st.lists(versions, min_size=2, max_size=5, unique_by=lambda v: Version(v)))
def test_version_order_rule_matches_pep440(tmp_path_factory, vs):
    """Releases dated in list order: the check fails exactly when a later release has a lower version."""
    import datetime as dt

    import tomli_w

    from llmos_community.check import check_index
    from llmos_community.index import DirSource, load_index

    vs = [str(Version(v)) for v in vs]
    root = tmp_path_factory.mktemp("ord")
    _index_with(root, {})
    for i, v in enumerate(vs):
        doc = {"version": v, "released": dt.date(2026, 1, 1) + dt.timedelta(days=i),
               "entry_points": {"demo": "demo.plugin"},
               "artifact": {"url": f"demo-{v}-py3-none-any.whl", "sha256": "0" * 64, "size": 1},
               "source": {"repository": "https://example.org", "commit": "abcdef0"}}
        (root / "plugins" / "demo" / "versions" / f"{v}.toml").write_text(tomli_w.dumps(doc))
    rules = {p.rule for p in check_index(load_index(DirSource(root)))}
    increasing = all(Version(a) < Version(b) for a, b in zip(vs, vs[1:]))
    assert ("version-order" not in rules) == increasing
