"""Rules on a plugin's manifest: licence, description, components, deprecation.

Part of ``llmos index check`` (:mod:`llmos_community.check`).
"""

from __future__ import annotations

from collections.abc import Iterator

from llmos_community import names
from llmos_community.check.checker import Checker, rule
from llmos_community.index import Problem


@rule("license-spdx")
def check_license(c: Checker) -> Iterator[Problem]:
    from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

    for e in c.entries():
        try:
            canonicalize_license_expression(e.manifest.license)
        except InvalidLicenseExpression:
            yield Problem(e.plugin.path, "license", "license-spdx",
                          f"{e.manifest.license!r} is not an SPDX license expression (e.g. Apache-2.0, MIT)")


@rule("description-file")
def check_description(c: Checker) -> Iterator[Problem]:
    for e in c.entries():
        desc = e.manifest.description_file
        if desc and desc not in e.files:
            yield Problem(e.plugin.path, "description_file", "description-file",
                          f"{desc!r} is not in the plugin folder; add it or fix the field")


@rule("components-stage")
def check_components(c: Checker) -> Iterator[Problem]:
    from llmos.sdk import ComponentRef, ValidationError

    for e in c.entries():
        for i, ref in enumerate(e.manifest.components):
            try:
                parsed = ComponentRef.parse(ref)
            except ValidationError as exc:
                yield Problem(e.plugin.path, f"components.{i}", "components-stage", exc.message)
                continue
            if parsed.stage not in e.manifest.stages:
                yield Problem(e.plugin.path, f"components.{i}", "components-stage",
                              f"{ref!r} is in stage {parsed.stage!r}, which is not listed in stages")


@rule("deprecation-reason", "deprecation-successor")
def check_deprecation(c: Checker) -> Iterator[Problem]:
    folders = {names.normalize(e.manifest.name) for e in c.entries()}
    for e in c.entries():
        m = e.manifest
        if m.status == "deprecated" and (m.deprecation is None or not m.deprecation.reason):
            yield Problem(e.plugin.path, "deprecation.reason", "deprecation-reason",
                          "a deprecated plugin needs [deprecation] reason = \"...\" (and a successor if there is one)")
        if m.deprecation is not None and m.deprecation.successor:
            if names.normalize(m.deprecation.successor) not in folders:
                yield Problem(e.plugin.path, "deprecation.successor", "deprecation-successor",
                              f"successor {m.deprecation.successor!r} is not in the index")
