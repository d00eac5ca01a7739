"""How the TUI looks: SVG snapshots of the main screens, from a fixed data set (no hub, no
clock). ``pytest --snapshot-update tests/test_tui_snapshots.py`` rewrites them after an
intended change; review the SVGs in tests/__snapshots__/ before committing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import Input
from tui_sample import sample_model

from tui import ClawTui

SIZE = (140, 36)

SnapCompare = Callable[..., bool]


def steady(*keys: str) -> Callable[[Pilot[object]], Awaitable[None]]:
    """Press ``keys``, then stop every text cursor on the screen from blinking: a blink that
    falls in the snapshot (a busy machine is slow to take it) would change the picture."""

    async def run(pilot: Pilot[object]) -> None:
        await pilot.press(*keys)
        await pilot.pause()
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await pilot.pause()

    return run


@pytest.mark.parametrize(
    "press",
    [
        pytest.param([], id="board"),
        pytest.param(["f", "f"], id="board-needs-human-filter"),
        pytest.param(["2"], id="agents"),
        pytest.param(["3"], id="my-work"),
        pytest.param(["4"], id="events"),
        pytest.param(["5"], id="chat"),
        pytest.param(["6"], id="goals"),
        pytest.param(["?"], id="help"),
    ],
)
def test_main_screens(snap_compare: SnapCompare, press: list[str]) -> None:
    assert snap_compare(ClawTui(sample_model()), press=press, terminal_size=SIZE)


def test_task_detail(snap_compare: SnapCompare) -> None:
    """The detail of a task that was rejected by a human once, then reworked and approved."""
    assert snap_compare(
        ClawTui(sample_model()), press=["/", *"t-spec", "enter", "enter"], terminal_size=SIZE
    )


def test_reject_asks_for_a_reason(snap_compare: SnapCompare) -> None:
    assert snap_compare(ClawTui(sample_model()), run_before=steady("r"), terminal_size=SIZE)


def test_new_task_form(snap_compare: SnapCompare) -> None:
    assert snap_compare(
        ClawTui(sample_model()), run_before=steady("n", *"Summarise"), terminal_size=SIZE
    )
