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
        │   └── ModelOutputError      the answer is unusable (not the JSON the task asks for)
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


class _Retryable(SDKError):
    """A failed call worth another try; ``why`` is said in progress and in the error."""

    def __init__(self, why: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(f"{why}: {detail}")
        self.why = why
        self.detail = detail
        self.retry_after = retry_after
