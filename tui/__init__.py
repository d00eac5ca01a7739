"""The Claw Hub TUI: humans join a Claw Group as participants (Textual).

``python -m tui --url URL --name NAME --skills review=0.9`` (or ``clawhub tui``) runs it.
In code::

    session = GroupSession(url, "Ann", skills={"review": 0.9})
    await session.start()
    await ClawTui(session.model, session).run_async()
    await session.stop()

Imports ``protocols`` and ``agents_sdk`` only: it talks to the hub over the bus.
"""

from .app import TABS, ClawTui
from .errors import HumanGaveUp, TUIError
from .human import HumanParticipant, human_id
from .model import ChatLine, GroupModel, WorkItem
from .screens import KEYMAP
from .session import GroupSession

__all__ = [
    "KEYMAP",
    "TABS",
    "ChatLine",
    "ClawTui",
    "GroupModel",
    "GroupSession",
    "HumanGaveUp",
    "HumanParticipant",
    "TUIError",
    "WorkItem",
    "human_id",
]
