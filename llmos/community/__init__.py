"""The community workflow: the plugin index in ``registry/`` and the tools around it.

- :mod:`~llmos.community.schema` — the manifests (pydantic), exported as JSON Schema;
- :mod:`~llmos.community.names` — name normalization, confusables and look-alikes;
- :mod:`~llmos.community.signing` — ed25519 keys, canonical digests, signatures;
- :mod:`~llmos.community.index` — reading an index from a directory or a git ref;
- :mod:`~llmos.community.check` — ``llmos index check``: one function per rule;
- :mod:`~llmos.community.resolver` / :mod:`~llmos.community.installer` —
  ``llmos plugin install``: resolve, download, verify the hash, install with pip;
- :mod:`~llmos.community.scaffold` — ``llmos plugin new``;
- :mod:`~llmos.community.contrib` — ``llmos contrib``: submit, review, record.

Nothing here imports torch; pydantic and cryptography are imported by the modules
that need them, and the CLI imports these modules only when a command runs.
"""
