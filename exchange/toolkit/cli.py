"""``exchange-toolkit``: the command groups of :mod:`.cli_core` with the commands of :mod:`.cli_manage`.

Assembled here so neither module imports the other's importer (no import cycle): ``cli_core``
defines the groups and the everyday commands, ``cli_manage`` adds keys, edit commands and
conformance to those groups.
"""
from __future__ import annotations

from exchange.toolkit import cli_manage  # noqa: F401 - importing adds its commands to the groups
from exchange.toolkit.cli_core import main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover - ``python -m exchange.toolkit.cli``
    main()
