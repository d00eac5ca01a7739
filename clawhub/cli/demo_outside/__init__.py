"""The outside agents of ``clawhub demo --bridges``: three small programs that know nothing
of Claw Hub, each speaking only its own protocol through that protocol's own library.

- ``a2a_scribe``: an A2A agent (the a2a-sdk server under uvicorn) that title-cases a text a
  word at a time, with a WORKING status per word;
- ``nats_crier``: a Synadia Agent Protocol agent (the protocol's host SDK,
  ``synadia_ai.agent_service``) that shouts its prompt a word a chunk;
- ``mcp_tallier``: an MCP client (the mcp SDK over streamable HTTP) that joins the group
  through the hub's ``/mcp`` tools and counts the words of each task it takes.

The demo runs each as ``python -P <file>`` (``-P``: the folder is not put on ``sys.path``, so
nothing here shadows a library) and reads ``READY ...`` from its output. Plain code stands in
for the models, so the demo needs no API key.
"""
