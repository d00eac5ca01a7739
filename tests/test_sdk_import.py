"""``import agents_sdk`` stays light: nats-py comes without aiohttp (its WebSocket
transport's dependency, which litellm installs), and that transport still finds aiohttp when
it is used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_import_agents_sdk_does_not_load_aiohttp() -> None:
    out = run(
        "import sys, importlib.util\n"
        "assert importlib.util.find_spec('aiohttp') is not None, 'aiohttp must be installed'\n"
        "import agents_sdk\n"
        "print('aiohttp' in sys.modules, 'nats.aio.client' in sys.modules)"
    )
    assert out == "False True"


def test_nats_websocket_transport_still_reaches_aiohttp() -> None:
    out = run(
        "import sys, agents_sdk\n"
        "from nats.aio import transport\n"
        "print(transport.aiohttp.WSMsgType.BINARY.name, 'aiohttp' in sys.modules)"
    )
    assert out == "BINARY True"


def test_aiohttp_loaded_first_is_left_alone() -> None:
    out = run(
        "import aiohttp, agents_sdk\nfrom nats.aio import transport\n"
        "print(transport.aiohttp is aiohttp)"
    )
    assert out == "True"


def test_import_agents_sdk_loads_neither_litellm_nor_mcp() -> None:
    """Not on import, and not when an LLM agent with tools, MCP servers and skills is built:
    litellm loads when the agent starts, mcp when a task uses an MCP server."""
    out = run(
        "import sys, pathlib, tempfile\n"
        "import agents_sdk\n"
        "from agents_sdk import LLMAgent, as_tool\n"
        "skills = pathlib.Path(tempfile.mkdtemp())\n"
        "(skills / 'review.md').write_text('Review carefully.')\n"
        "def count(text: str) -> int:\n"
        "    return len(text.split())\n"
        "as_tool(count)\n"
        "LLMAgent('w', model='openai/gpt-4o-mini', tools=[count], skills_dir=skills,\n"
        "         mcp_servers=[{'command': ['mcp-server']}, 'http://127.0.0.1:1/mcp'])\n"
        "print(sorted(m for m in ('litellm', 'mcp', 'mcp_types', 'openai', 'httpx')\n"
        "             if m in sys.modules))"
    )
    assert out == "[]"


def test_import_agents_sdk_loads_no_model_tool_or_bridge_library() -> None:
    """litellm, mcp and a2a load only when an LLM agent or a toolkit runs; the command
    runner (``CommandAgent``) is plain standard library, YAML only for a ``.yaml`` config."""
    out = run(
        "import sys, agents_sdk\n"
        "heavy = ('litellm', 'mcp', 'a2a', 'yaml', 'typer', 'clawhub')\n"
        "print(agents_sdk.CommandAgent.__module__, "
        "sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    assert out == "agents_sdk.command []"


def test_an_agent_loads_sqlite_only_when_it_opens_its_memory(tmp_path: Path) -> None:
    """``Agent.memory`` is a SQLite file opened on first use: until then, not even the
    ``sqlite3`` module is loaded (it was 7.5% of ``import agents_sdk``'s instructions)."""
    out = run(
        "import sys, agents_sdk\n"
        f"a = agents_sdk.Agent('m', id='m', data_dir={str(tmp_path)!r})\n"
        "before = 'sqlite3' in sys.modules\n"
        "a.memory.remember('k', {'v': 1})\n"
        "print(before, 'sqlite3' in sys.modules, a.memory.recall('k'))"
    )
    assert out == "False True {'v': 1}"


def test_a_yaml_agent_config_loads_yaml_then(tmp_path: Path) -> None:
    config = tmp_path / "coder.yaml"
    config.write_text("id: coder\npreset: codex\nskills: {python: 0.8}\n")
    out = run(
        "import sys\nfrom agents_sdk import load_config\n"
        f"c = load_config({str(config)!r})\n"
        "print(c.preset, c.skills, 'yaml' in sys.modules)"
    )
    assert out == "codex {'python': 0.8} True"


def test_tracing_off_loads_no_opentelemetry() -> None:
    """With no ``OTEL_EXPORTER_OTLP_ENDPOINT`` and no tracer provider, ``import agents_sdk``
    and building an agent and a client (whose requests would carry a traceparent) load no
    ``opentelemetry`` module, though it is installed."""
    out = run(
        "import os, sys, importlib.util\n"
        "for k in [k for k in os.environ if k.startswith('OTEL_')]:\n"
        "    del os.environ[k]\n"
        "assert importlib.util.find_spec('opentelemetry') is not None\n"
        "import agents_sdk\n"
        "from agents_sdk import Agent, HubClient, LLMAgent, _trace\n"
        "Agent('a'); HubClient('nats://127.0.0.1:1'); LLMAgent('w', model='openai/gpt-4o-mini')\n"
        "assert _trace.headers() is None and not _trace.enabled()\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    assert out == "[]"


def test_import_agents_sdk_does_not_load_jetstream() -> None:
    """nats-py's JetStream package (``nats.js``) waits for its first use; the client's own
    reads of it (the status header of a message with headers) and ``jetstream()`` get it."""
    out = run(
        "import sys, agents_sdk, nats\n"
        "print(sorted(m for m in sys.modules if m.startswith(('nats.js', 'nats.micro'))))\n"
        "from nats.aio import client\n"
        "print(client.nats.js.api.Header.STATUS.value, 'nats.js.api' in sys.modules)\n"
        "print(type(client.Client().jetstream()).__name__, nats.js is sys.modules['nats.js'])"
    )
    assert out == "[]\nStatus True\nJetStreamContext True"


def test_jetstream_imported_first_is_left_alone() -> None:
    out = run(
        "import nats.js, agents_sdk, sys\n"
        "import nats\n"
        "print(nats.js is sys.modules['nats.js'], nats.js.JetStreamContext.__name__)"
    )
    assert out == "True JetStreamContext"


#: Modules ``import agents_sdk`` leaves for their first use (the fronts a plain agent does
#: not need: the LLM agent with its tools and skills, the command runner).
DEFERRED_SDK = (
    "agents_sdk.llm",
    "agents_sdk.command",
    "agents_sdk.tools",
    "agents_sdk.skills",
    "agents_sdk.mcp_tools",
    "agents_sdk._model_calls",
    "agents_sdk._toolloop",
    "agents_sdk._prompt",
    "agents_sdk._process",
    "agents_sdk.presets",
    "agents_sdk._workdir",
    "tomllib",
)


def test_import_agents_sdk_leaves_the_fronts_for_first_use() -> None:
    out = run(
        f"import sys, agents_sdk\nprint([m for m in {DEFERRED_SDK!r} if m in sys.modules])\n"
        "agents_sdk.LLMAgent\nprint('agents_sdk.llm' in sys.modules)"
    )
    assert out == "[]\nTrue"


def test_every_public_name_of_agents_sdk_imports() -> None:
    """``__all__`` is the public API (unchanged by the lazy loading), and every name in it
    comes with ``from agents_sdk import name``, as the object its module defines. A lazy
    name is not in the package's namespace until read, so each one goes through the lazy
    path here."""
    out = run(
        "import sys, agents_sdk\n"
        "print(agents_sdk.__all__)\n"
        "print(sorted(n for n in agents_sdk.__all__ if n not in vars(agents_sdk)))\n"
        "for name in agents_sdk.__all__:\n"
        "    space = {}\n"
        "    exec(f'from agents_sdk import {name} as o', space)\n"
        "    o = space['o']\n"
        "    home = sys.modules[getattr(o, '__module__', None) or 'agents_sdk']\n"
        "    assert getattr(home, name, o) is o and getattr(agents_sdk, name) is o, name\n"
        "print(sorted(n for n in agents_sdk.__all__ if n not in dir(agents_sdk)))\n"
        "try:\n    agents_sdk.NoSuchName\nexcept AttributeError as e:\n    print(e)"
    )
    names = [
        "Agent", "AgentIdConflict", "Answer", "CommandAgent", "CommandConfig", "CommandError",
        "CommandFailed", "CommandNotFound", "CommandOutputError", "DelegationFailed", "Handler",
        "HandlerFunc", "HubClient", "HubUnavailable", "LLMAgent", "Memory", "ModelAuthError",
        "ModelError", "ModelOutputError", "ModelRequestError", "ModelUnavailable", "Note",
        "RequestRefused", "RequestTimeout", "RetryPolicy", "SDKError", "Skill", "TaskContext",
        "Tool", "ToolError", "ToolLoopStopped", "ToolServerError", "WaitTimeout", "__version__",
        "as_tool", "load_config", "load_skills", "local_hub_url",
    ]  # fmt: skip
    lazy = [
        "Answer", "CommandAgent", "CommandConfig", "LLMAgent", "RetryPolicy", "Skill", "Tool",
        "as_tool", "load_config", "load_skills",
    ]  # fmt: skip
    assert out.splitlines() == [
        repr(names),
        repr(lazy),
        "[]",
        "module 'agents_sdk' has no attribute 'NoSuchName'",
    ]


def test_import_agents_sdk_does_not_load_importlib_metadata() -> None:
    """nats-py reads its version with ``importlib.metadata``; the SDK reads the same number
    from nats-py's ``.dist-info`` folder, and the client still sends it."""
    out = run(
        "import sys, agents_sdk\n"
        "print(sorted(m for m in ('importlib.metadata', 'email', 'zipfile', 'csv')"
        " if m in sys.modules))\n"
        "from nats.aio import client\n"
        "import importlib.metadata\n"
        "print(client.__version__ == importlib.metadata.version('nats-py') != '0.0.0')"
    )
    assert out == "[]\nTrue"


def test_nats_version_without_a_dist_info_folder_asks_importlib_metadata(
    tmp_path: Path,
) -> None:
    """Where the folder is missing or ambiguous, the version comes the way nats-py reads it."""
    package = tmp_path / "site" / "nats"
    package.mkdir(parents=True)
    (tmp_path / "site" / "nats_py-9.9.9.dist-info").mkdir()
    out = run(
        "import importlib.metadata, agents_sdk._natsimport as n\n"
        f"print(n.nats_version({str(package)!r}))\n"
        f"import os; os.mkdir({str(tmp_path / 'site' / 'nats_py-1.0.0.dist-info')!r})\n"
        f"print(n.nats_version({str(package)!r}) == importlib.metadata.version('nats-py'))"
    )
    assert out == "9.9.9\nTrue"


def test_import_agents_sdk_leaves_the_hubs_half_of_protocols() -> None:
    """The API table, the AsyncAPI and JSON Schema export and ``build_models`` load when one
    of their names is first read; every name of ``protocols.__all__`` still comes."""
    out = run(
        "import sys, agents_sdk, protocols\n"
        "hub_side = ('protocols.api', 'protocols.asyncapi', 'protocols.schema',"
        " 'protocols.build')\n"
        "print([m for m in hub_side if m in sys.modules])\n"
        "for name in protocols.__all__:\n"
        "    space = {}\n"
        "    exec(f'from protocols import {name} as o', space)\n"
        "    assert getattr(protocols, name) is space['o'], name\n"
        "print([m for m in hub_side if m not in sys.modules], protocols.API['submit'].request)"
    )
    assert out == "[]\n[] <class 'protocols.control.SubmitTasks'>"
