"""Resolve ``NAME[SPEC]`` through the index (PEP 440 / PEP 592 semantics).

- the highest version allowed by ``SPEC`` wins (pre-releases only when the
  specifier names one, as pip does);
- a yanked version is skipped unless ``SPEC`` pins it exactly (``==1.2.0``);
- a version whose plugin does not support this core's plugin API is refused;
- an entry that fails ``index check`` rules that protect installers (schema,
  signatures, approvals, hashes) is refused: only reviewed releases are installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmos.sdk import NotFoundError, ValidationError


@dataclass
class Resolved:
    name: str
    version: str
    manifest: Any  # VersionManifest
    plugin: Any  # PluginManifest
    yanked: bool

    @property
    def filename(self) -> str:
        return self.manifest.artifact.url.rstrip("/").rsplit("/", 1)[-1]


def parse_requirement(text: str) -> tuple[str, Any]:
    """``"name>=1,<2"`` → ``(name, SpecifierSet)``."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise ValidationError(f"{text!r} is not a requirement: write NAME, NAME==1.0 or 'NAME>=1,<2'") from exc
    if req.url or req.extras or req.marker:
        raise ValidationError(f"{text!r}: give a name and an optional version specifier only")
    return req.name, req.specifier


def is_exact_pin(spec: Any) -> str | None:
    specs = list(spec)
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        return specs[0].version
    return None


def entry_errors(index: Any, entry: Any) -> list[Any]:
    """The check errors of one entry (installs refuse an entry that does not check clean)."""
    from llmos_community.check import check_index

    return [p for p in check_index(index) if p.level == "error"
            and f"/plugins/{entry.folder}/" in "/" + p.path + "/"]


def resolve(index: Any, requirement: str, *, api_version: int | None = None, verify: bool = True) -> Resolved:
    from packaging.version import Version

    from llmos import SUPPORTED_API_VERSIONS

    supported = set(SUPPORTED_API_VERSIONS) if api_version is None else {api_version}
    name, spec = parse_requirement(requirement)
    entry = index.find(name)
    if verify:
        errors = entry_errors(index, entry)
        if errors:
            raise ValidationError(f"install-reviewed: refusing {entry.manifest.name}: its index entry does not check "
                                  f"clean: {errors[0]}")
    plugin = entry.manifest
    if not supported & set(plugin.api_versions):
        raise ValidationError(f"install-api: {plugin.name} supports plugin API {plugin.api_versions}, this llmos has "
                              f"API {sorted(supported)}: "
                              "install a release made for this llmos, or upgrade llmos")
    pinned = is_exact_pin(spec)
    manifests = entry.valid_versions()
    live = {}
    skipped_yanked = []
    for v, m in manifests.items():
        if m.yanked and (pinned is None or Version(pinned) != Version(v)):
            if spec.contains(Version(v), prereleases=True):
                skipped_yanked.append(f"{v} ({m.yanked_reason})")
            continue
        live[Version(v)] = m
    # PEP 440 selection (pre-releases only when the specifier names one, or when
    # nothing else matches), as pip does
    candidates = [(ver, live[ver]) for ver in spec.filter(live)]
    if not candidates:
        hint = (f"; install-yanked: skipped yanked releases (install one only with an exact pin ==VERSION): "
                f"{', '.join(skipped_yanked)}" if skipped_yanked else "")
        avail = ", ".join(sorted(entry.versions, key=Version)) or "none"
        raise NotFoundError(f"no release of {plugin.name} matches {str(spec) or 'any version'} "
                            f"(released: {avail}){hint}")
    ver, m = max(candidates, key=lambda t: t[0])
    return Resolved(plugin.name, str(ver), m, plugin, m.yanked)


def search(index: Any, text: str = "", stage: str | None = None) -> list[dict[str, Any]]:
    """Entries whose name, summary, keywords or components contain ``text`` (case-insensitive)."""
    from packaging.version import Version

    out = []
    needle = text.lower()
    for entry in sorted(index.plugins.values(), key=lambda e: e.folder):
        m = entry.manifest
        if m is None:
            continue
        if stage and stage not in m.stages:
            continue
        hay = " ".join([m.name, m.summary, *m.keywords, *m.components]).lower()
        if needle and needle not in hay:
            continue
        live = [v for v, vm in entry.valid_versions().items() if not vm.yanked]
        latest = str(max((Version(v) for v in live), default="")) if live else None
        out.append({"name": m.name, "latest": latest, "summary": m.summary, "stages": m.stages,
                    "status": m.status, "components": m.components})
    return out
