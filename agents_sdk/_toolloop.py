"""The tool-calling loop of an ``LLMAgent``: ask the model with the tools offered; while it
asks for tool calls, run them and send the results back; stop at its final answer.

::

    step 1..max_steps:  model call (streamed, retried as any call) ─► text only? ─► answer
                           │ tool calls
                           ▼
                        spent ≥ max_cost? ─► ToolLoopStopped("budget")
                        each call: progress "calling add(...)", run it (errors become an
                        "error: ..." result), log "add(...) → 3"; append the tool messages
    the max_steps-th call still asks for tools ─► ToolLoopStopped("max_steps") (its calls
                                                     are not run: no model call would read them)

Usage is counted on the context by every call (``LLMAgent.ask``) and summed in the returned
``Answer``. A ``ToolServerError`` (an MCP server died) leaves the loop and fails the attempt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from protocols import Usage

from . import _trace
from ._context import TaskContext
from ._model_calls import Answer, ToolCall
from .errors import ToolLoopStopped
from .tools import Toolbox

Ask = Callable[..., Awaitable[Answer]]

#: Characters of a call's arguments and result shown in progress and log lines.
PREVIEW = 300


def _preview(text: str, limit: int = PREVIEW) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _assistant_message(answer: Answer) -> dict[str, Any]:
    """The model's turn as the next request must repeat it (OpenAI's format)."""
    return {
        "role": "assistant",
        "content": answer.text or None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments or "{}"},
            }
            for call in answer.tool_calls
        ],
    }


async def _run_call(
    toolbox: Toolbox, call: ToolCall, ctx: TaskContext, step: int
) -> dict[str, Any]:
    await ctx.progress(None, f"step {step}: calling {call.name}({_preview(call.arguments, 120)})")
    with _trace.span("claw.tool.call", attributes={"gen_ai.tool.name": call.name}) as span:
        outcome = await toolbox.call(call.name, call.arguments, ctx)
        _trace.note(span, clawhub__step=step, clawhub__ok=outcome.ok)
        if not outcome.ok:
            _trace.failed(span, outcome.text)
    verdict = "→" if outcome.ok else "failed:"
    await ctx.log(
        f"tool {call.name}({_preview(call.arguments)}) {verdict} {_preview(outcome.text)} "
        f"({outcome.seconds:.2f}s)"
    )
    return {
        "role": "tool",
        "tool_call_id": call.id,
        "name": call.name,
        "content": outcome.text,
    }


async def run_tool_loop(
    ask: Ask,
    ctx: TaskContext,
    chat: list[dict[str, Any]],
    toolbox: Toolbox,
    *,
    model: str,
    max_steps: int,
    max_cost: float | None,
    tool_choice: str | dict[str, Any] = "auto",
) -> Answer:
    """Run the loop over ``chat`` (extended in place); the final ``Answer`` carries the usage
    and the calls of every step."""
    specs = toolbox.specs()
    usage: Usage | None = None
    calls = 0
    priced = True
    answer: Answer | None = None
    for step in range(1, max_steps + 1):
        answer = await ask(ctx, chat, tools=specs, tool_choice=tool_choice)
        usage = answer.usage.plus(usage) if usage is not None else answer.usage
        calls += answer.calls
        priced = priced and answer.priced
        if not answer.tool_calls:
            return Answer(answer.text, usage, calls, priced)
        spent = ctx.usage.cost if ctx.usage is not None else usage.cost
        if max_cost is not None and spent >= max_cost:
            raise ToolLoopStopped(
                model,
                f"{model}: the attempt spent ${spent:.6f} of its budget of ${max_cost:.6f} "
                f"after {step} model calls, before a final answer",
                reason="budget",
                steps=step,
            )
        if step == max_steps:
            break  # no model call would read the results
        chat.append(_assistant_message(answer))
        for call in answer.tool_calls:
            chat.append(await _run_call(toolbox, call, ctx, step))
    assert answer is not None
    wanted = ", ".join(sorted({c.name for c in answer.tool_calls}))
    raise ToolLoopStopped(
        model,
        f"{model}: stopped after max_steps={max_steps} model calls without a final answer "
        f"(the last one still asked for {wanted})",
        reason="max_steps",
        steps=max_steps,
    )
