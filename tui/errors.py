"""The errors the TUI raises.

::

    ClawHubError                      protocols.ClawHubError: catch this to catch everything
    ├── ProtocolError                 protocols: a message did not parse (has ``code``)
    ├── SDKError                      agents_sdk.errors: the session's requests to the hub
    └── TUIError                      anything the TUI itself raises
        └── HumanGaveUp               the human gave a task up; its attempt fails with this

``HumanGaveUp`` is raised in the human participant's handler, so the hub records the
attempt as failed with ``"HumanGaveUp: <reason>"`` (counted against ``max_attempts``).
A badly written skills list (``--skills``, the new-task form) is a ``ValueError``, which
the command line and the form turn into a message.
"""

from __future__ import annotations

from protocols import ClawHubError

__all__ = ["HumanGaveUp", "TUIError"]


class TUIError(ClawHubError):
    """Root of every error raised by ``tui``."""


class HumanGaveUp(TUIError):
    """Raised in the handler when the human gives a task up; the hub records it as an error."""
