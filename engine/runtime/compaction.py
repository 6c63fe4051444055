"""Keeping a workflow's live state as small as its present, not its past.

SpiffWorkflow grows the task tree by a level at every loop iteration: a deal that moves
between stages for years would make each step slower and its stored state larger, and
past ~1,000 levels its iterators stop descending and the instance silently stalls.

What is live is every task that is not finished. SpiffWorkflow looks *down* from
ancestors of live tasks (boundary-event and parallel splits, joins, multi-instance
parents), at the parent of a task about to run (to inherit its data), and *up* the
ancestor chain for a task of a given spec (a parallel gateway that merges a loop's
back edge looks for a completed predecessor of each incoming flow; structured joins
look for their split). So the engine keeps:

- the whole subtree of the parent of the live tasks' lowest common ancestor (the anchor);
- above it, a spine: the most recent ancestor of each distinct task spec, in their
  original order, so every "nearest ancestor with spec X" lookup answers as before.

Everything else is finished history nobody reads again. The spine is bounded by the
number of task specs, so the tree no longer grows with the number of iterations. The
history itself is not lost: the engine records completed tasks in its history table.
"""

from __future__ import annotations

from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState


def compact(workflow) -> int:
    """Cut finished history out of a BpmnWorkflow and of each live subprocess.

    Returns the number of tasks removed.
    """
    removed = 0
    for subprocess in list(workflow.subprocesses.values()):
        if not subprocess.completed:
            removed += _compact_tree(workflow, subprocess)
    return removed + _compact_tree(workflow, workflow)


def _compact_tree(top_workflow, workflow) -> int:
    root = workflow.task_tree
    anchor = _anchor(workflow)
    if anchor is None or anchor is root:
        return 0

    ancestors = _path_from_root(anchor)[:-1]
    spine = _spine(ancestors)
    if len(spine) == len(ancestors) and all(len(t._children) == 1 for t in ancestors):
        return 0

    keep = {task.id for task in spine}
    keep.update(task.id for task in _subtree(anchor))
    dropped = [task for task_id, task in workflow.tasks.items() if task_id not in keep]
    for task in dropped:
        if task.id in top_workflow.subprocesses:
            top_workflow.delete_subprocess(task)
    for task in dropped:
        del workflow.tasks[task.id]

    chain = [*spine, anchor]
    for parent, child in zip(chain, chain[1:]):
        parent._children = [child.id]
        child._parent = parent.id
    if workflow.last_task is not None and workflow.last_task.id not in keep:
        workflow.last_task = anchor
    return len(dropped)


def _spine(ancestors: list[Task]) -> list[Task]:
    """The root and the most recent ancestor of each task spec, oldest first."""
    latest = {}
    for position, task in enumerate(ancestors[1:], start=1):
        latest[task.task_spec.name] = position
    return [ancestors[0], *(ancestors[p] for p in sorted(latest.values()))]


def _anchor(workflow) -> Task | None:
    """The parent of the lowest common ancestor of all unfinished tasks.

    The parent is kept, not just the ancestor: an unfinished task inherits its data from
    its parent when it becomes ready, and the ancestor itself may be one of them.
    """
    live = [t for t in workflow.tasks.values() if not t.has_state(TaskState.FINISHED_MASK)]
    if not live:
        return None
    common = _path_from_root(live[0])
    for task in live[1:]:
        on_path = set()
        node = task
        while node is not None:
            on_path.add(node.id)
            node = node.parent
        while common and common[-1].id not in on_path:
            common.pop()
    lowest = common[-1]
    return lowest.parent


def _path_from_root(task: Task) -> list[Task]:
    path = []
    while task is not None:
        path.append(task)
        task = task.parent
    path.reverse()
    return path


def _subtree(task: Task):
    stack = [task]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.children)
