"""A tiny OpenAI-compatible chat endpoint on a free loopback port, for the cases litellm's
``mock_response`` cannot show: tokens that arrive *slowly* (streaming must count as
progress) and a model that never answers (the call must time out, not hang).

It speaks just enough HTTP/1.1 for ``POST /v1/chat/completions`` with ``stream: true``:
server-sent events in chunked encoding, one token every ``delay`` seconds, then a usage
chunk and ``[DONE]``. With ``hang=True`` it reads the request and never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any


class FakeChatServer:
    """``async with FakeChatServer(tokens=[...], delay=0.1) as srv: srv.api_base``"""

    def __init__(
        self, tokens: list[str] | None = None, delay: float = 0.05, hang: bool = False
    ) -> None:
        self.tokens = tokens if tokens is not None else ["Hello", " from", " a", " slow model."]
        self.delay = delay
        self.hang = hang
        self.requests: list[dict[str, Any]] = []
        """The JSON body of every request received."""
        self.connections = 0
        """Connections accepted (a client that gives up early may send no full request)."""
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def api_base(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aenter__(self) -> FakeChatServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length)
            self.requests.append(json.loads(body))
            if self.hang:
                await reader.read()  # until the client gives up and closes
                return
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            )
            for token in self.tokens:
                await asyncio.sleep(self.delay)
                await self._event(writer, self._chunk({"content": token}, None))
            await self._event(writer, self._chunk({}, "stop"))
            usage = {"prompt_tokens": 12, "completion_tokens": len(self.tokens)}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            await self._event(writer, {**self._chunk({}, None), "choices": [], "usage": usage})
            await self._send(writer, b"data: [DONE]\n\n")
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    def _chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    async def _event(self, writer: asyncio.StreamWriter, data: dict[str, Any]) -> None:
        await self._send(writer, f"data: {json.dumps(data)}\n\n".encode())

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()
