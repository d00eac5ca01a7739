"""Tools for an ``LLMAgent``: Python functions turned into the function specs of litellm's
function calling, and run when the model calls them.

::

    def word_count(text: str) -> int:
        \"\"\"Count the words in a text.

        Args:
            text: The text to count.
        \"\"\"
        return len(text.split())

    agent = LLMAgent("writer", model="openai/gpt-4o-mini", tools=[word_count])

The JSON Schema of a tool's arguments comes from its signature (a pydantic model built over
the parameters: any type pydantic knows, defaults, ``Annotated[..., Field(...)]``, a
``BaseModel``, shown inline as a nested object and validated into an instance of it); its
description from the docstring's text, and each argument's from a Google-style ``Args:``
section. Sync functions run in a worker thread, async ones on the loop.

**Built-in tools that need the task.** A parameter annotated ``TaskContext`` is left out of
the schema and receives the running attempt's context, so a tool can report progress, read
the task, use the agent's memory or talk to the group::

    async def remember(ctx: TaskContext, fact: str) -> str:
        \"\"\"Keep a fact in your memory for later tasks.\"\"\"
        await asyncio.to_thread(ctx.memory.note, fact, tags=["tool"])
        return "noted"

**Errors never crash the agent**: an unknown tool name, arguments that are not JSON or do
not match the schema, a tool that raises or runs past ``timeout``: each comes back as an
``error: ...`` text for the model to read and recover from. Only a dead tool server
(``ToolServerError``) fails the attempt.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import time
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, create_model

from ._context import TaskContext
from .errors import DelegationFailed, ToolError, ToolServerError

__all__ = ["Tool", "ToolOutcome", "Toolbox", "as_tool"]

#: Longest tool result (characters) that goes back to the model; longer ones are cut.
MAX_RESULT = 20_000

#: What a tool name may be (OpenAI's and Anthropic's rule for function names).
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

ToolRun = Callable[[dict[str, Any], TaskContext], Awaitable[Any]]


@dataclass(frozen=True)
class Tool:
    """One tool a model may call."""

    name: str
    """The name the model calls it by."""
    description: str
    """What it does, for the model."""
    parameters: dict[str, Any]
    """JSON Schema of its arguments (an object)."""
    run: ToolRun
    """Runs it: ``await run(arguments, ctx)``; raises ``ValueError`` for arguments that do
    not fit, ``ToolError`` (or anything else) for a failure of the tool itself."""
    source: str = "python"
    """Where it comes from: ``python``, or ``mcp:<server>``."""

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r} must match {NAME.pattern}")

    def spec(self) -> dict[str, Any]:
        """The tool as litellm's ``tools=`` takes it (OpenAI's function format)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


def _doc_parts(func: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """The description and the per-argument texts of a Google-style docstring."""
    doc = inspect.getdoc(func) or ""
    lines = doc.splitlines()
    text: list[str] = []
    args: dict[str, str] = {}
    current: str | None = None
    section: str | None = None
    for line in lines:
        stripped = line.strip()
        header = stripped.rstrip(":").lower()
        if stripped.endswith(":") and header in {"args", "arguments", "parameters", "params"}:
            section = "args"
            continue
        if stripped.endswith(":") and header in {"returns", "raises", "yields", "example"}:
            section = "other"
            continue
        if section is None:
            text.append(line)
        elif section == "args" and stripped:
            match = re.match(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", stripped)
            if match and line.startswith((" ", "\t")) and not line.startswith(" " * 8):
                current = match.group(1).lstrip("*")
                args[current] = match.group(2)
            elif current is not None:
                args[current] = f"{args[current]} {stripped}".strip()
    description = "\n".join(text).strip() or func.__name__.replace("_", " ")
    return description, args


def _is_context(annotation: Any) -> bool:
    return annotation is TaskContext or annotation == "TaskContext"


def as_tool(
    func: Callable[..., Any] | Tool, *, name: str | None = None, description: str | None = None
) -> Tool:
    """A ``Tool`` from a Python function (sync or async), its schema from the signature."""
    if isinstance(func, Tool):
        return func
    if not callable(func):
        raise TypeError(f"a tool must be a function or a Tool, got {func!r}")
    signature = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:  # a forward reference that does not resolve: take them as written
        hints = {k: p.annotation for k, p in signature.parameters.items()}
    doc, arg_docs = _doc_parts(func)
    fields: dict[str, Any] = {}
    context_param: str | None = None
    for pname, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {func.__name__}: *args and **kwargs cannot be described")
        annotation = hints.get(pname, param.annotation)
        if _is_context(annotation):
            context_param = pname
            continue
        if annotation is inspect.Parameter.empty:
            annotation = Any
        default = ... if param.default is inspect.Parameter.empty else param.default
        described = Field(default, description=arg_docs[pname]) if pname in arg_docs else default
        fields[pname] = (annotation, described)
    tool_name = name or func.__name__
    model: type[BaseModel] = create_model(
        f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
    )
    schema = _inline_refs(model.model_json_schema())
    schema.pop("title", None)
    is_async = inspect.iscoroutinefunction(func)

    async def run(arguments: dict[str, Any], ctx: TaskContext) -> Any:
        try:
            parsed = model.model_validate(arguments)
        except ValidationError as exc:
            raise ValueError(_validation_text(exc)) from None
        kwargs = {k: getattr(parsed, k) for k in fields}
        if context_param is not None:
            kwargs[context_param] = ctx
        if is_async:
            return await func(**kwargs)
        result = await asyncio.to_thread(func, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    return Tool(tool_name, description or doc, schema, run)


async def _delegate(
    ctx: TaskContext,
    title: str,
    instructions: str = "",
    skills: dict[str, float] | None = None,
    input: JsonValue = None,
) -> JsonValue:
    """Hand a part of this task to another participant of the group and wait for its output.

    Args:
        title: a short title of the part to hand over.
        instructions: what to do, in words, for whoever takes it.
        skills: the skills it needs, each with the minimum level 0..1 (empty: anyone).
        input: the data it works on (any JSON).
    """
    try:
        return await ctx.delegate(
            title, instructions=instructions or None, skills=skills, input=input
        )
    except DelegationFailed as exc:  # the model may try another way
        raise ToolError(
            f"the delegated task {exc.task_id} ended {exc.state}: {exc.error}"
        ) from None


def delegate_tool(skills: Mapping[str, float]) -> Tool:
    """The built-in ``delegate`` tool of ``LLMAgent(delegate=True)``: ``ctx.delegate`` for a
    model, its description naming the skills the group has now (``ctx.group_skills()``), so
    a supervisor model hands work only to skills someone can do."""
    listed = ", ".join(f"{name} (up to {level:.1f})" for name, level in sorted(skills.items()))
    description = (
        "Hand a part of this task to another participant of the group (an agent on any model, "
        "or a person) and wait for its output, which this call returns. Use it for work that "
        "needs a skill you lack or that can be done apart; several calls in one turn run in "
        "parallel. Skills in the group now: "
        + (listed or "none online right now (leave skills empty)")
        + ". Ask only for these skills, at most at these levels."
    )
    return as_tool(_delegate, name="delegate", description=description)


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with each ``$ref`` to its ``$defs`` replaced by the definition, so a
    ``BaseModel`` parameter is a plain nested object (with its field's description: a
    description beside a ``$ref`` is ignored by JSON Schema, and some providers take no
    ``$ref`` at all). A recursive model cannot be inlined: its schema stays as it is."""
    defs = schema.get("$defs")
    if not isinstance(defs, dict):
        return schema

    def resolve(node: Any, inside: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [resolve(item, inside) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        rest = {k: resolve(v, inside) for k, v in node.items() if k != "$ref"}
        if not isinstance(ref, str):
            return rest
        name = ref.removeprefix("#/$defs/")
        if name in inside or name not in defs:
            raise _Recursive
        return {**resolve(defs[name], inside | {name}), **rest}

    try:
        inlined: dict[str, Any] = resolve(
            {k: v for k, v in schema.items() if k != "$defs"}, frozenset()
        )
    except _Recursive:
        return schema
    return inlined


class _Recursive(Exception):
    """A ``$ref`` that cannot be inlined (a model that contains itself)."""


def _validation_text(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:10]:
        where = ".".join(str(x) for x in error.get("loc", ())) or "(arguments)"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "the arguments do not match the tool's schema: " + "; ".join(parts)


def render_result(value: Any) -> str:
    """A tool's return value as the text the model reads (cut at ``MAX_RESULT``)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    if len(text) > MAX_RESULT:
        text = text[: MAX_RESULT - 40] + f"\n… [cut: {len(text) - MAX_RESULT + 40} more]"
    return text


@dataclass(frozen=True)
class ToolOutcome:
    """One tool call, run: what goes back to the model."""

    name: str
    arguments: str
    """The arguments as the model sent them."""
    ok: bool
    """False when the call failed (the text then says why)."""
    text: str
    """The result, or ``error: ...``: the content of the ``tool`` message."""
    seconds: float


class Toolbox:
    """The tools of one agent (or one task), by name; runs the calls a model makes."""

    def __init__(self, tools: Sequence[Tool], *, timeout: float = 120.0) -> None:
        self.tools: dict[str, Tool] = {}
        for item in tools:
            if item.name in self.tools:
                raise ValueError(
                    f"two tools are named {item.name!r} "
                    f"({self.tools[item.name].source} and {item.source})"
                )
            self.tools[item.name] = item
        self.timeout = timeout
        """Seconds one call may take; a slower one comes back to the model as an error."""

    def __bool__(self) -> bool:
        return bool(self.tools)

    @property
    def names(self) -> list[str]:
        return sorted(self.tools)

    def specs(self) -> list[dict[str, Any]]:
        """Every tool, as litellm's ``tools=`` takes them."""
        return [t.spec() for t in self.tools.values()]

    async def call(self, name: str, arguments: str, ctx: TaskContext) -> ToolOutcome:
        """Run one call; every failure but a dead tool server becomes an error text."""
        started = time.monotonic()

        def done(ok: bool, text: str) -> ToolOutcome:
            return ToolOutcome(name, arguments, ok, text, time.monotonic() - started)

        found = self.tools.get(name)
        if found is None:
            known = ", ".join(self.names) or "(none)"
            return done(False, f"error: there is no tool named {name!r}; the tools are: {known}")
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            return done(False, f"error: the arguments are not valid JSON ({exc}): {arguments!r}")
        if not isinstance(parsed, dict):
            return done(False, f"error: the arguments must be a JSON object, got {arguments!r}")
        try:
            value = await self._run(found, parsed, ctx)
        except ToolServerError:
            raise
        except TimeoutError:
            return done(False, f"error: {name} did not finish within {self.timeout:g}s")
        except (ToolError, ValueError) as exc:
            return done(False, f"error: {exc}")
        except Exception as exc:
            return done(False, f"error: {name} raised {type(exc).__name__}: {exc}")
        return done(True, render_result(value))

    async def _run(self, found: Tool, arguments: dict[str, Any], ctx: TaskContext) -> Any:
        """Run a tool under the timeout, with progress while it runs (it is not a stall)."""
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(found.run(arguments, ctx))
        started = loop.time()
        beat = max(0.2, min(10.0, ctx.stall_timeout / 3))
        try:
            while True:
                left = started + self.timeout - loop.time()
                if left <= 0:
                    raise TimeoutError
                done, _ = await asyncio.wait({task}, timeout=min(beat, left))
                if done:
                    return task.result()
                await ctx.progress(None, f"tool {found.name}: running {loop.time() - started:.0f}s")
        finally:
            if not task.done():
                task.cancel()
