"""The errors the SDK raises.

::

    ClawHubError                      protocols.ClawHubError: catch this to catch everything
    ├── ProtocolError                 protocols: a message did not parse (has ``code``)
    └── SDKError                      anything the SDK itself raises
        ├── HubUnavailable            cannot reach the hub: no connection, no responders
        ├── RequestTimeout            the hub did not answer a request in time
        ├── WaitTimeout               ``HubClient.wait`` gave up (also a ``TimeoutError``)
        ├── RequestRefused            the hub answered with ``ErrorReply`` (has ``code``)
        │   └── AgentIdConflict       ``wrong_session``: another live process holds the id
        ├── DelegationFailed          a task delegated with ``ctx.delegate`` failed or was
        │                             cancelled (has ``task_id``, ``state``, ``error``)
        ├── ModelError                a model call of an ``LLMAgent`` failed (has ``model``)
        │   ├── ModelAuthError        no API key, or the key was refused (has ``env_var``)
        │   ├── ModelRequestError     the model refused the request: bad request, unknown model
        │   ├── ModelUnavailable      rate limit, timeout, 5xx, no connection: retries spent
        │   ├── ModelOutputError      the answer is unusable (not the JSON the task asks for)
        │   └── ToolLoopStopped       the tool loop hit ``max_steps`` or the budget (``reason``)
        ├── ToolServerError           an MCP server of an agent's toolkit failed or died
        ├── ToolError                 raised by a tool: its text goes back to the model
        ├── CommandError              a ``CommandAgent``'s command failed (has ``command``)
        │   ├── CommandNotFound       the executable is not there (said at start)
        │   ├── CommandFailed         it exited non-zero or was killed (has ``returncode``)
        │   └── CommandOutputError    it exited 0, but its output is unusable (not JSON)
        └── _Retryable                private: one failed model call worth another try; it
                                      never leaves ``LLMAgent.ask`` (spent retries become
                                      ``ModelUnavailable``)

NATS' own ``NoRespondersError`` and ``TimeoutError`` never escape the SDK's request
helpers: they become ``HubUnavailable`` and ``RequestTimeout``; a request whose subject the
NATS server refuses this credential is a ``RequestRefused`` with code ``forbidden``, at once.
A ``HubUnavailable`` from connecting names its cause (bad credentials, nothing listening,
an ``http://`` URL, timeout). Every exception class the
SDK defines is in this module.
"""

from __future__ import annotations

from protocols import ClawHubError, ErrorCode

__all__ = [
    "AgentIdConflict",
    "CommandError",
    "CommandFailed",
    "CommandNotFound",
    "CommandOutputError",
    "DelegationFailed",
    "HubUnavailable",
    "ModelAuthError",
    "ModelError",
    "ModelOutputError",
    "ModelRequestError",
    "ModelUnavailable",
    "RequestRefused",
    "RequestTimeout",
    "SDKError",
    "ToolError",
    "ToolLoopStopped",
    "ToolServerError",
    "WaitTimeout",
]


class SDKError(ClawHubError):
    """Root of every error raised by ``agents_sdk``."""


class HubUnavailable(SDKError):
    """The hub cannot be reached: the connection failed, or nobody answers the subject."""


class RequestTimeout(SDKError):
    """The hub did not answer a request within the timeout."""

    def __init__(self, subject: str, timeout: float) -> None:
        super().__init__(f"no reply on {subject} within {timeout:g}s")
        self.subject = subject
        self.timeout = timeout


class WaitTimeout(SDKError, TimeoutError):
    """``HubClient.wait``/``wait_all`` timed out before the tasks finished."""

    def __init__(self, task_ids: list[str], timeout: float) -> None:
        super().__init__(f"tasks {', '.join(task_ids)} not finished within {timeout:g}s")
        self.task_ids = task_ids
        self.timeout = timeout


class RequestRefused(SDKError):
    """The hub refused a request with an ``ErrorReply``; nothing was applied."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message


class AgentIdConflict(RequestRefused):
    """Registration refused: another live process is registered under this agent id."""


class DelegationFailed(SDKError):
    """A task delegated with ``ctx.delegate`` ended without an output: it failed (its
    attempts spent, its deadline passed) or was cancelled. ``error`` is the hub's reason."""

    def __init__(self, task_id: str, state: str, error: str) -> None:
        super().__init__(f"delegated task {task_id} {state}" + (f": {error}" if error else ""))
        self.task_id = task_id
        self.state = state
        self.error = error


class ModelError(SDKError):
    """A model call of an ``LLMAgent`` failed; the task's result says so (``ok=False``)."""

    def __init__(self, model: str, message: str) -> None:
        super().__init__(message)
        self.model = model


class ModelAuthError(ModelError):
    """No API key for the model's provider, or the provider refused the key. Not retried."""

    def __init__(self, model: str, message: str, env_var: str | None = None) -> None:
        super().__init__(model, message)
        self.env_var = env_var


class ModelRequestError(ModelError):
    """The provider refused the request itself (bad request, unknown model). Not retried."""


class ModelUnavailable(ModelError):
    """Rate limits, timeouts, server errors or no connection, through every retry."""

    def __init__(self, model: str, message: str, calls: int) -> None:
        super().__init__(model, message)
        self.calls = calls


class ModelOutputError(ModelError):
    """The model answered, but not in the form the task asks for (e.g. not JSON)."""


class ToolLoopStopped(ModelError):
    """An ``LLMAgent`` with tools stopped before a final answer: ``reason`` is ``max_steps``
    (that many model calls, each asking for more tools) or ``budget`` (the attempt spent its
    ``max_cost``). The attempt fails; the hub may retry the task elsewhere."""

    def __init__(self, model: str, message: str, reason: str, steps: int) -> None:
        super().__init__(model, message)
        self.reason = reason
        self.steps = steps


class ToolServerError(SDKError):
    """An MCP server an agent takes tools from could not start, stopped answering or died
    (``server`` names it). The attempt fails with this error instead of hanging."""

    def __init__(self, server: str, message: str) -> None:
        super().__init__(message)
        self.server = server


class ToolError(SDKError):
    """Raised by a tool (or for an MCP tool that answered with an error): the message goes
    back to the model as the call's result, and the model may try again. Never fails the
    attempt by itself."""


class CommandError(SDKError):
    """The command of a ``CommandAgent`` failed; the task's result says so (``ok=False``)."""

    def __init__(self, command: str, message: str) -> None:
        super().__init__(message)
        self.command = command


class CommandNotFound(CommandError):
    """The executable is not on ``PATH`` (or not executable): ``CommandAgent.start`` says so
    before joining the group, rather than failing every task."""


class CommandFailed(CommandError):
    """The command exited non-zero (``returncode``) or was killed by a signal (negative);
    ``stderr`` holds the last lines it wrote there."""

    def __init__(self, command: str, message: str, returncode: int, stderr: str = "") -> None:
        super().__init__(command, message)
        self.returncode = returncode
        self.stderr = stderr


class CommandOutputError(CommandError):
    """The command exited 0 but its output is unusable (not the JSON the task asks for)."""


class _Retryable(SDKError):
    """A failed call worth another try; ``why`` is said in progress and in the error."""

    def __init__(self, why: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(f"{why}: {detail}")
        self.why = why
        self.detail = detail
        self.retry_after = retry_after
