"""``python -m clawhub.cli``: the ``clawhub`` command."""

from .app import main

main()
