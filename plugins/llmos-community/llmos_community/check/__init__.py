"""``llmos index check``: the rules of GOVERNANCE.md as code, one function per rule.

One module per group of rules, run in this order: :mod:`.maintainers`, :mod:`.naming`,
:mod:`.manifest`, :mod:`.versions`, :mod:`.in_tree`, :mod:`.reviews`; the
:class:`~llmos_community.check.checker.Checker` runs them.

Every function takes a :class:`Checker` and yields :class:`~llmos_community.index.Problem`
records (``path: field: rule: message``). A *warning* is a flag (it is shown and it
raises the number of approvals needed), an *error* fails the check.

Rules that compare with what was already merged (immutability, strictly increasing
versions, deletions) need ``base`` — the index at a git ref (``--base origin/main``).
"""

from __future__ import annotations

# importing a group registers its rules, in this order
from llmos_community.check import maintainers, naming, manifest, versions, in_tree, reviews  # noqa: F401, I001
from llmos_community.check.checker import RULES, Checker, check_index, rule, rule_ids
from llmos_community.check.reviews import current_digest

__all__ = ["RULES", "Checker", "check_index", "current_digest", "rule", "rule_ids"]
