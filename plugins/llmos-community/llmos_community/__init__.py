"""The community workflow: the plugin index in ``registry/`` and the tools around it.

- :mod:`~llmos_community.schema` — the manifests (pydantic), exported as JSON Schema;
- :mod:`~llmos_community.names` — name normalization, confusables and look-alikes;
- :mod:`~llmos_community.signing` — ed25519 keys, canonical digests, signatures;
- :mod:`~llmos_community.index` — reading an index from a directory or a git ref;
- :mod:`~llmos_community.check` — ``llmos index check``: one function per rule;
- :mod:`~llmos_community.resolver` / :mod:`~llmos_community.installer` —
  ``llmos plugin install``: resolve, download, verify the hash, install with pip;
- :mod:`~llmos_community.scaffold` — ``llmos plugin new``;
- :mod:`~llmos_community.contrib` — ``llmos contrib``: submit, review, record.

Nothing here imports torch; pydantic and cryptography are imported by the modules
that need them, and the CLI imports these modules only when a command runs.
"""
