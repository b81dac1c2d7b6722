"""Extract the command blocks of the documentation and run them as a reader would.

README.md: every ``sh``/``bash``/``python`` fenced block is run, in order, in one shell, unless the
line before it is ``<!-- docs-test: skip (why) -->``. docs/*.md: only blocks whose info string says
``runnable`` (e.g. ```` ```python runnable ````). Python blocks run with the project's ``.venv/bin/python``
inside that shell, so environment variables exported by earlier blocks reach them. The only change
made to a block is the port: 8080 (the exchange) and 9000 (an endpoint) become free ports.
"""
from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(\S*)(.*)$")
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\b")
SHELL = {"sh", "bash", "shell", "console"}
PORTS = ("8080", "9000")


@dataclass(frozen=True)
class Block:
    source: str
    line: int
    language: str
    text: str
    skipped: bool


def blocks(path: Path, *, only_runnable: bool) -> list[Block]:
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match or not match.group(1):
            i += 1
            continue
        language, rest = match.group(1), match.group(2)
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        previous = lines[start - 2] if start >= 2 else ""
        runnable = language in SHELL | {"python"} and (not only_runnable or "runnable" in rest)
        if runnable:
            found.append(Block(path.name, start, "python" if language == "python" else "sh", "\n".join(body),
                               skipped=bool(SKIP.search(previous))))
    return found


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def script(selected: list[Block], ports: dict[str, int]) -> str:
    """One bash script running the blocks in order; each block announces itself on stderr."""
    out = ["set -euo pipefail"]
    for n, block in enumerate(selected):
        text = block.text
        for old, new in ports.items():
            text = text.replace(old, str(new))
        out.append(f"echo '### {block.source}:{block.line} ({block.language})' >&2")
        if block.language == "python":
            out.append(f".venv/bin/python - <<'__DOCS_PY_{n}__'\n{text}\n__DOCS_PY_{n}__")
        else:
            out.append(text)
    out.append("echo '### all blocks ran' >&2")
    return "\n".join(out) + "\n"


def scratch_clone(target: Path) -> Path:
    """A directory that looks like a fresh clone (the repository's files, linked) without var/."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in REPO.iterdir():
        if entry.name in {"var", ".git", ".pytest_cache", ".hypothesis"} or entry.name.startswith(".venv-"):
            continue
        (target / entry.name).symlink_to(entry)
    return target
