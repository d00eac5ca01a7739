"""Every NATS subject Claw Hub uses, and nowhere else.

Subjects are grouped by Claw Group (the tenant)::

    claw.<group>.hub.<sender>.register    request  agent → hub   Register → RegisterAck
    claw.<group>.hub.<sender>.deregister  request  agent → hub   Deregister → Ok
    claw.<group>.hub.<sender>.heartbeat   publish  agent → hub   Heartbeat
    claw.<group>.hub.<sender>.progress    publish  agent → hub   Progress
    claw.<group>.hub.<sender>.result      request  agent → hub   Result → ResultAck
    claw.<group>.agent.<id>.inbox         both     hub → agent   Assignment → Accept|Decline;
                                                                 Cancel
    claw.<group>.api.<sender>.<verb>      request  client → hub  SubmitTasks, ListTasks,
                                                                 DecideTask, SubmitGoal, ...
    claw.<group>.events.<kind>            publish  hub → all     Event (kind dots kept)

``<sender>`` is who sends: the id of the credential (the token id ``tk-…``, which is also
the NATS user name) when the hub runs with auth, and ``anon`` without. nats-server lets a
token's user publish only under its own id, so the hub knows the sender of every message
from its subject, never from a field in the message.

Every request may instead be answered with ``ErrorReply``.
"""

from __future__ import annotations

from ._base import is_identifier

PREFIX = "claw"

API_SUBMIT = "submit"
API_AGENTS = "agents"
API_TASKS = "tasks"
API_TASK = "task"
API_CANCEL = "cancel"
API_EVENTS = "events"
API_DECIDE = "decide"
API_REASSIGN = "reassign"
API_CLAIM = "claim"
API_AGENT_MODE = "agent_mode"
API_CHAT = "chat"
API_GROUP = "group"
API_GOAL_SUBMIT = "goal_submit"
API_GOALS = "goals"
API_GOAL = "goal"
API_GOAL_DECIDE = "goal_decide"
API_GOAL_CANCEL = "goal_cancel"
API_VERBS = (
    API_SUBMIT,
    API_AGENTS,
    API_TASKS,
    API_TASK,
    API_CANCEL,
    API_EVENTS,
    API_DECIDE,
    API_REASSIGN,
    API_CLAIM,
    API_AGENT_MODE,
    API_CHAT,
    API_GROUP,
    API_GOAL_SUBMIT,
    API_GOALS,
    API_GOAL,
    API_GOAL_DECIDE,
    API_GOAL_CANCEL,
)


def _check(kind: str, value: str) -> str:
    if not is_identifier(value):
        raise ValueError(f"{kind} {value!r} is not a valid subject token")
    return value


def _group(group: str) -> str:
    return f"{PREFIX}.{_check('group', group)}"


#: The sender of a client that has no token (a hub without auth).
ANON_SENDER = "anon"

#: Agent → hub calls, by name (the last token of their subjects).
HUB_CALLS = (
    "register",
    "deregister",
    "heartbeat",
    "progress",
    "result",
    "results",
    "delegate",
    "decline",
)

#: Token of a subject that matches any single token (a NATS wildcard).
ANY = "*"


def sender_for(token: str | None) -> str:
    """The ``<sender>`` a client puts in its subjects: its token's id, else ``anon``."""
    if not token:
        return ANON_SENDER
    token_id = token.strip().partition(".")[0]
    return token_id if is_identifier(token_id) else ANON_SENDER


def _sender(sender: str) -> str:
    return sender if sender == ANY else _check("sender", sender)


def hub_call(group: str, sender: str, call: str) -> str:
    """The subject of an agent → hub ``call`` (one of ``HUB_CALLS``) sent by ``sender``
    (``ANY``: the hub's subscription to every sender)."""
    if call not in HUB_CALLS:
        raise ValueError(f"unknown hub call {call!r}")
    return f"{_group(group)}.hub.{_sender(sender)}.{call}"


def hub_register(group: str, sender: str) -> str:
    """Where agents register."""
    return hub_call(group, sender, "register")


def hub_deregister(group: str, sender: str) -> str:
    """Where agents say goodbye."""
    return hub_call(group, sender, "deregister")


def hub_heartbeat(group: str, sender: str) -> str:
    """Where agents heart-beat."""
    return hub_call(group, sender, "heartbeat")


def hub_progress(group: str, sender: str) -> str:
    """Where agents report progress and log lines."""
    return hub_call(group, sender, "progress")


def hub_result(group: str, sender: str) -> str:
    """Where agents deliver results."""
    return hub_call(group, sender, "result")


def hub_results(group: str, sender: str) -> str:
    """Where agents deliver several results at once (``Results``)."""
    return hub_call(group, sender, "results")


def hub_delegate(group: str, sender: str) -> str:
    """Where the holder of a running attempt hands part of its work to the group."""
    return hub_call(group, sender, "delegate")


def hub_decline(group: str, sender: str) -> str:
    """Where a credit agent declines an assignment pushed to it (``Assignment.pushed``)."""
    return hub_call(group, sender, "decline")


def sender_of(subject: str) -> str | None:
    """The ``<sender>`` of an agent → hub or API subject (its fourth token), or None."""
    parts = subject.split(".")
    if len(parts) < 5 or parts[0] != PREFIX or parts[2] not in ("hub", "api"):
        return None
    return parts[3] if is_identifier(parts[3]) else None


def agent_inbox(group: str, agent_id: str) -> str:
    """One participant's inbox: assignments (offers are request/reply, pushed ones plain
    publishes) and cancels."""
    return f"{_group(group)}.agent.{_check('agent id', agent_id)}.inbox"


def api(group: str, sender: str, verb: str) -> str:
    """A client request subject (``verb`` is one of ``API_VERBS``) sent by ``sender``
    (``ANY``: the hub's subscription to every sender)."""
    if verb not in API_VERBS:
        raise ValueError(f"unknown api verb {verb!r}")
    return f"{_group(group)}.api.{_sender(sender)}.{verb}"


def events(group: str, kind: str) -> str:
    """Where an event of ``kind`` (dotted, e.g. ``task.done``) is published."""
    parts = kind.split(".")
    for part in parts:
        _check("event kind part", part)
    return f"{_group(group)}.events.{kind}"


def all_events(group: str) -> str:
    """Wildcard matching every event of the group."""
    return f"{_group(group)}.events.>"


def task_events(group: str) -> str:
    """Wildcard matching every task event of the group."""
    return f"{_group(group)}.events.task.>"


def goal_events(group: str) -> str:
    """Wildcard matching every goal event of the group."""
    return f"{_group(group)}.events.goal.>"


#: First token of every NATS reply inbox.
INBOX_ROOT = "_INBOX"


def inbox_prefix(owner: str) -> str:
    """The reply-inbox prefix of one credential (``_INBOX.<token id>``): with NATS auth on, a
    participant may subscribe only below its own prefix (nats-py: ``inbox_prefix=``)."""
    return f"{INBOX_ROOT}.{_check('inbox owner', owner)}"


def hub_inbox_prefix(group: str) -> str:
    """The reply-inbox prefix of the hub of ``group`` (``_INBOX.hub.<group>``): the answers
    to its offers go below it. A leaf node's credential may publish there (nats-server's
    ``allow_responses`` does not cross a leaf connection) and nowhere else in ``_INBOX``."""
    return f"{INBOX_ROOT}.hub.{_check('group', group)}"


def server_urls(url: str) -> list[str]:
    """The servers of a NATS address: one URL, or several comma-separated (a cluster), as
    nats-py takes them (a list)."""
    return [one.strip() for one in url.split(",") if one.strip()]


def own_inbox(owner: str) -> str:
    """Wildcard of every reply inbox under ``inbox_prefix(owner)``."""
    return f"{inbox_prefix(owner)}.>"


def group_all(group: str) -> str:
    """Wildcard of every subject of the group (an admin's NATS permission)."""
    return f"{_group(group)}.>"


def hub_all(group: str, sender: str) -> str:
    """Wildcard of the agent → hub subjects (register, heartbeat, progress...) that
    ``sender`` may publish on (a token's NATS permission)."""
    return f"{_group(group)}.hub.{_check('sender', sender)}.>"


def requester(reply: str) -> str:
    """Who asked, from a reply subject: its first two tokens, the key of per-requester
    limits. nats-py replies are ``_INBOX.<nuid>.<n>`` (one key per connection), or
    ``_INBOX.<token id>.<nuid>.<n>`` with ``inbox_prefix(token id)`` (one key per token)."""
    return ".".join(reply.split(".", 2)[:2])


def replies(inbox: str) -> str:
    """Wildcard for every reply sent to ``reply_to(inbox, token)``."""
    return f"{inbox}.*"


def reply_to(inbox: str, token: str) -> str:
    """A reply subject under ``inbox`` (a NATS inbox such as ``_INBOX.<nuid>``)."""
    return f"{inbox}.{_check('reply token', token)}"


def reply_token(subject: str) -> str:
    """The token of a reply subject made by ``reply_to``."""
    return subject.rpartition(".")[2]


def system_disconnects(account: str) -> str:
    """NATS system-account subject on which the server announces closed client connections."""
    return f"$SYS.ACCOUNT.{account}.DISCONNECT"


#: Prefix of the NATS connection name of an SDK participant: ``claw-agent:<id>:<session>``.
AGENT_CONNECTION_PREFIX = "claw-agent:"


def agent_connection_name(agent_id: str, session: str) -> str:
    """The NATS connection name an agent uses, so the hub can tell whose connection closed."""
    return f"{AGENT_CONNECTION_PREFIX}{_check('agent id', agent_id)}:{_check('session', session)}"


def parse_agent_connection_name(name: str) -> tuple[str, str] | None:
    """``(agent_id, session)`` from a connection name, or None if it is not an agent's."""
    if not name.startswith(AGENT_CONNECTION_PREFIX):
        return None
    agent_id, _, session = name[len(AGENT_CONNECTION_PREFIX) :].partition(":")
    if not (is_identifier(agent_id) and is_identifier(session)):
        return None
    return agent_id, session
