"""The delegation tree as people see it: the TUI's task detail and `clawhub show`'s lines,
from the statuses the hub sends (``TaskStatus.children``, ``spec.parent``)."""

from __future__ import annotations

from rich.console import Console

from clawhub.cli.views import tree_lines
from protocols import AttemptInfo, TaskSpec, TaskState, TaskStatus
from tui.model import GroupModel
from tui.render import task_detail


def _task(
    tid: str,
    state: TaskState,
    *,
    parent: str | None = None,
    children: list[str] | None = None,
    holder: str | None = None,
    done_by: str | None = None,
    error: str | None = None,
) -> TaskStatus:
    history = []
    if done_by:
        history = [AttemptInfo(attempt=1, agent_id=done_by, outcome="done", offered_at=900.0)]
    return TaskStatus(
        id=tid,
        spec=TaskSpec(id=tid, title=f"title of {tid}", parent=parent),
        state=state,
        attempt=len(history),
        failures=0,
        assigned_to=holder,
        created_at=900.0,
        updated_at=950.0,
        history=history,
        children=children or [],
        error=error,
    )


def sample() -> dict[str, TaskStatus]:
    tasks = [
        _task("top", TaskState.RUNNING, children=["top-c1", "top-c2"], holder="boss"),
        _task("top-c1", TaskState.DONE, parent="top", done_by="wa"),
        _task("top-c2", TaskState.RUNNING, parent="top", children=["top-c2-c1"], holder="wb"),
        _task("top-c2-c1", TaskState.FAILED, parent="top-c2", error="deadline passed"),
    ]
    return {t.id: t for t in tasks}


def text_of(renderable: object) -> str:
    console = Console(record=True, width=120, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_the_tui_task_detail_shows_the_children_and_the_parent() -> None:
    tasks = sample()
    model = GroupModel(clock=lambda: 1000.0)
    model.set_tasks(tasks.values())
    top = text_of(task_detail(model, tasks["top"]))
    assert "Delegated" in top
    lines = [line.strip() for line in top.splitlines()]
    assert "└ top-c1  done  wa  title of top-c1" in lines
    assert "└ top-c2  running  wb  title of top-c2" in lines
    assert "└ top-c2-c1  failed  -  title of top-c2-c1" in lines  # the grandchild, indented
    child = text_of(task_detail(model, tasks["top-c2"]))
    assert any(line.split()[:3] == ["parent", "top", "(running)"] for line in child.splitlines())
    leaf = text_of(task_detail(model, tasks["top-c1"]))
    assert "Delegated" not in leaf


def test_clawhub_show_lines_draw_the_tree_with_states_agents_and_reasons() -> None:
    tasks = sample()
    assert tree_lines(tasks["top"], tasks) == [
        "  └ top-c1  done  wa  title of top-c1",
        "  └ top-c2  running  wb  title of top-c2",
        "    └ top-c2-c1  failed  -  title of top-c2-c1  (deadline passed)",
    ]
    partial = {k: v for k, v in tasks.items() if k != "top-c2"}
    assert tree_lines(tasks["top"], partial)[1] == "  └ top-c2 …"  # not read (limit)
