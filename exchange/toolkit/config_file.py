"""The toolkit's configuration file: the exchange's base URL and an API key, saved by ``configure``.

The file is JSON (``{"url": ..., "key": ...}``) at ``$XDG_CONFIG_HOME/exchange-toolkit.json``
(``~/.config/exchange-toolkit.json`` by default), or wherever ``EXCHANGE_TOOLKIT_CONFIG`` or the
``--config`` option points. It holds a secret, so it is written readable by its owner only.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

FILE_NAME = "exchange-toolkit.json"


class ConfigFileError(Exception):
    """The configuration file exists but cannot be read as the expected JSON object."""


@dataclass
class ToolkitSettings:
    url: str | None = None
    key: str | None = None


def default_path(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / FILE_NAME


def load(path: Path) -> ToolkitSettings:
    """The saved settings; empty ones when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ToolkitSettings()
    except OSError as exc:
        raise ConfigFileError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigFileError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path} must hold a JSON object")
    return ToolkitSettings(url=_text(data.get("url")), key=_text(data.get("key")))


def save(path: Path, settings: ToolkitSettings) -> Path:
    """Write the settings atomically, mode 0600 (the key is a secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({k: v for k, v in asdict(settings).items() if v}, fh, indent=2)
        fh.write("\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
