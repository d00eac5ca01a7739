"""A real HTTP server speaking the OpenAI chat completions API, with scripted turns, for the
tool-calling tests: litellm is pointed at it through ``api_base`` (model ``openai/...``) and
talks to it over a real loopback connection, streaming (server-sent events) or not.

Each request gets the next turn of the script: ``say("text")`` (an answer), ``calls(("add",
{"a": 1}), ...)`` (tool calls; arguments may also be a raw string, valid JSON or not), or a
function of the request body returning one of those (to answer from the tool results the
agent sent back). The last turn repeats. Every request body is kept in ``requests``, so a
test can assert what really went back to the model.

Streamed tool calls come as OpenAI sends them: a first delta with the call's id and name,
then the arguments in pieces, then ``finish_reason: tool_calls`` and a usage chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Turn:
    """One scripted model reply: a text, tool calls, or both."""

    text: str = ""
    tool_calls: list[tuple[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 20
    completion_tokens: int = 5


def say(text: str, **tokens: int) -> Turn:
    """A final answer."""
    return Turn(text=text, **tokens)


def calls(*pairs: tuple[str, Any], **tokens: int) -> Turn:
    """Tool calls: ``(name, arguments)``; a dict is sent as JSON, a string as it is."""
    return Turn(tool_calls=list(pairs), **tokens)


Script = list[Turn | Callable[[dict[str, Any]], Turn]]


def tool_results(body: dict[str, Any]) -> list[str]:
    """The contents of the ``tool`` messages in a request (what the agent sent back)."""
    return [str(m.get("content")) for m in body.get("messages", []) if m.get("role") == "tool"]


class ScriptedChatServer:
    """``async with ScriptedChatServer([calls(...), say("done")]) as srv: srv.api_base``"""

    def __init__(self, script: Script, *, chunk: int = 7) -> None:
        if not script:
            raise ValueError("a script needs at least one turn")
        self.script = script
        self.chunk = chunk
        """Characters per streamed piece (text and tool arguments)."""
        self.requests: list[dict[str, Any]] = []
        """The JSON body of every request, in order."""
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def api_base(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aenter__(self) -> ScriptedChatServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def _turn(self, body: dict[str, Any]) -> Turn:
        step = self.script[min(len(self.requests) - 1, len(self.script) - 1)]
        return step if isinstance(step, Turn) else step(body)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            while True:  # keep-alive: the client may send several requests
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                body = json.loads(await reader.readexactly(length))
                self.requests.append(body)
                turn = self._turn(body)
                if body.get("stream"):
                    await self._stream(writer, turn)
                else:
                    await self._whole(writer, turn)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if task is not None:
                self._handlers.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    def _arguments(raw: Any) -> str:
        return raw if isinstance(raw, str) else json.dumps(raw)

    def _usage(self, turn: Turn) -> dict[str, int]:
        return {
            "prompt_tokens": turn.prompt_tokens,
            "completion_tokens": turn.completion_tokens,
            "total_tokens": turn.prompt_tokens + turn.completion_tokens,
        }

    async def _whole(self, writer: asyncio.StreamWriter, turn: Turn) -> None:
        message: dict[str, Any] = {"role": "assistant", "content": turn.text or None}
        if turn.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": self._arguments(args)},
                }
                for i, (name, args) in enumerate(turn.tool_calls)
            ]
        reply = {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": 1,
            "model": "scripted",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if turn.tool_calls else "stop",
                }
            ],
            "usage": self._usage(turn),
        }
        data = json.dumps(reply).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        await writer.drain()

    async def _stream(self, writer: asyncio.StreamWriter, turn: Turn) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        await self._event(writer, self._chunk({"role": "assistant", "content": ""}, None))
        text, n = turn.text, self.chunk
        for start in range(0, len(text), n):
            await self._event(writer, self._chunk({"content": text[start : start + n]}, None))
        for i, (name, args) in enumerate(turn.tool_calls):
            first = {
                "index": i,
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            await self._event(writer, self._chunk({"tool_calls": [first]}, None))
            raw = self._arguments(args)
            for start in range(0, len(raw), n):
                piece = {"index": i, "function": {"arguments": raw[start : start + n]}}
                await self._event(writer, self._chunk({"tool_calls": [piece]}, None))
        finish = "tool_calls" if turn.tool_calls else "stop"
        await self._event(writer, self._chunk({}, finish))
        await self._event(
            writer, {**self._chunk({}, None), "choices": [], "usage": self._usage(turn)}
        )
        await self._send(writer, b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    @staticmethod
    def _chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "scripted",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    async def _event(self, writer: asyncio.StreamWriter, data: dict[str, Any]) -> None:
        await self._send(writer, f"data: {json.dumps(data)}\n\n".encode())

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()
