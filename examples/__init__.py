"""Runnable examples: agents that join a running hub, and a client that submits work.

Each file is a standalone script meant to be copied; ``tests/test_examples.py`` runs them all.
"""
