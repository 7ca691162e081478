"""The annotator workflow: validate seed clusters, grow them, organise the tree, undo.

Plain functions on (project, user_id, ...). Each decision is ONE event in the log, written in
the same transaction as the change, and bumps `members_version` of every node it touches.
See docs/workflow.md.
"""

from ._core import Page, WorkflowError
from . import grow, grow_search, organise, undo, validate

__all__ = ["Page", "WorkflowError", "grow", "grow_search", "organise", "undo", "validate"]
