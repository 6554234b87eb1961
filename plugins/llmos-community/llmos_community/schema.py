"""The index's file formats as pydantic models (exported as JSON Schema).

Layout of an index (``registry/`` in the repository)::

    maintainers.toml                      index and core maintainers with their keys
    removed.toml                          removed plugins: name, reason, date, link
    plugins/<name>/plugin.toml            PluginManifest
    plugins/<name>/README.md              the description file it names
    plugins/<name>/versions/<v>.toml      VersionManifest, one per release, immutable
    plugins/<name>/reviews/<subject>/<handle>.toml
                                          ReviewRecord: a signed approval, consent,
                                          request for changes or block; <subject> is
                                          ``plugin`` (the entry as a whole) or a version

Semantic rules (names, versions, approvals) live in :mod:`llmos_community.check`;
these models only say which fields exist and what type they have.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmos.sdk import STAGES

Stage = Literal[STAGES]  # type: ignore[valid-type]  # the stages, defined once in llmos.components
HANDLE_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Person(_Strict):
    """An author: a name, optionally an e-mail and an index handle."""

    name: str = Field(min_length=1)
    email: str | None = None
    handle: str | None = Field(default=None, pattern=HANDLE_PATTERN)


class Maintainer(_Strict):
    """A plugin maintainer: may publish new versions; must consent to being listed."""

    handle: str = Field(pattern=HANDLE_PATTERN, description="index handle (lowercase, like a GitHub login)")
    name: str = ""
    public_key: str = Field(description="ed25519 public key, raw 32 bytes, base64 (llmos contrib keygen)")


class Urls(_Strict):
    homepage: str | None = None
    source: str = Field(min_length=1, description="source repository URL (required)")
    issues: str | None = None


class Deprecation(_Strict):
    reason: str = ""
    successor: str | None = Field(default=None, description="name of the plugin that replaces this one")


class PluginManifest(_Strict):
    """``plugins/<name>/plugin.toml``: what the plugin is and who looks after it."""

    name: str = Field(description="distribution name; the folder is its PEP 503 normalized form")
    summary: str = Field(min_length=1, max_length=200)
    description_file: str | None = Field(default="README.md", description="file in the plugin folder")
    license: str = Field(description="SPDX license expression, e.g. Apache-2.0")
    authors: list[Person] = Field(min_length=1)
    origin: Literal["community", "in-tree"] = Field(
        default="community",
        description="'community': a signed, reviewed entry; 'in-tree': a standard plugin in this repository "
                    "(plugins/<name>), approved by the repository's own review and verified by rebuilding its "
                    "wheel from the recorded git tree: no signature, no key")
    maintainers: list[Maintainer] = Field(default=[], description="plugin maintainers (at least one for a "
                                          "community entry; an in-tree entry is maintained by the core maintainers)")
    urls: Urls
    keywords: list[str] = []
    stages: list[Stage] = Field(default=[], description="stages it provides components for (none for a plugin "
                                "that only adds commands or lifecycle hooks)")
    components: list[str] = Field(default=[], description="component references it provides: stage.name")
    api_versions: list[int] = Field(min_length=1, description="llmos plugin API versions supported (LLMOS_API)")
    status: Literal["active", "deprecated", "archived"] = "active"
    deprecation: Deprecation | None = None
    security_contact: str = Field(min_length=1, description="where to report a vulnerability privately")
    added: dt.date = Field(description="date the entry was submitted")


class Artifact(_Strict):
    url: str = Field(description="https://..., file://..., or a bare wheel file name looked up in a wheelhouse")
    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(gt=0)


class Source(_Strict):
    repository: str = Field(min_length=1)
    commit: str = Field(min_length=7, max_length=64, description="commit the artifact was built from")
    subdirectory: str | None = None
    tree: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$",
                             description="git tree of the subdirectory at that commit (in-tree entries): survives "
                                         "squash merges and rebases, and is what the wheel is rebuilt from")


class BuildInfo(_Strict):
    """How the artifact was built (enough to rebuild it byte for byte)."""

    command: str = ""
    backend: str = ""
    source_date_epoch: int | None = None


class VersionManifest(_Strict):
    """``plugins/<name>/versions/<version>.toml``: one release; immutable once merged
    (only ``yanked``/``yanked_reason`` may change later)."""

    version: str = Field(description="PEP 440 public version; the file name is the same string")
    released: dt.date
    requires_python: str | None = None
    requirements: list[str] = Field(default=[], description="PEP 508 requirements of the wheel")
    entry_points: dict[str, str] = Field(description="llmos entry points: name -> hook module")
    artifact: Artifact
    source: Source
    build: BuildInfo | None = None
    notes: str = ""
    yanked: bool = False
    yanked_reason: str | None = None


class ReviewRecord(_Strict):
    """``plugins/<name>/reviews/<subject>/<handle>.toml``: one signed decision.

    The signature is ed25519 over :func:`llmos_community.signing.review_message`
    (plugin, subject, decision, digest, reason, handle): an approval is bound to the
    digest of exactly what it approved.
    """

    handle: str = Field(pattern=HANDLE_PATTERN)
    decision: Literal["approve", "consent", "request-changes", "block"]
    subject: str = Field(description="'plugin' or a version")
    covers: list[str] = Field(default=[], description="versions the plugin digest includes (subject 'plugin')")
    digest: str = Field(pattern=DIGEST_PATTERN)
    reason: str = ""
    signed_at: dt.datetime
    signature: str = Field(min_length=1, description="base64 ed25519 signature")


class PreviousKey(_Strict):
    """A key a maintainer used before (rotation or loss). Reviews merged while it was
    current keep verifying with it; new reviews must use the current key. A revoked key
    (compromised) verifies nothing: what it signed must be signed again."""

    public_key: str
    retired: dt.date
    revoked: bool = False
    reason: str = ""


class IndexMaintainer(_Strict):
    handle: str = Field(pattern=HANDLE_PATTERN)
    name: str = ""
    public_key: str
    previous_keys: list[PreviousKey] = []
    roles: list[Literal["index", "core"]] = Field(min_length=1)
    status: Literal["active", "emeritus"] = "active"
    since: dt.date


class MaintainersFile(_Strict):
    """``maintainers.toml``: who reviews the index (``index``) and runs the project (``core``)."""

    maintainer: list[IndexMaintainer] = Field(min_length=1)


class Removal(_Strict):
    name: str
    reason: str = Field(min_length=1)
    date: dt.date
    link: str = ""
    versions: list[str] = []


class RemovedFile(_Strict):
    """``removed.toml``: removed plugins; their names are not reused for 12 months."""

    removed: list[Removal] = []


SCHEMAS: dict[str, type[BaseModel]] = {
    "plugin": PluginManifest,
    "version": VersionManifest,
    "review": ReviewRecord,
    "maintainers": MaintainersFile,
    "removed": RemovedFile,
}


def json_schemas() -> dict[str, dict]:
    """Every file format of the index as JSON Schema (draft 2020-12), keyed by kind."""
    out = {}
    for kind, model in SCHEMAS.items():
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://llmos.dev/schemas/index/{kind}.schema.json"
        out[kind] = schema
    return out
