"""Documentation generated from the code, so it cannot drift: the configuration table (from
``exchange/config.py``: every field, its default and the comment beside or above it) and the command
reference (from the Click commands of ``exchange``).

``python -m exchange.docgen`` rewrites the generated blocks of README.md and docs/deploy.md (between
``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``) and docs/commands.md; ``--check`` only
reports what is stale (``tests/ops/test_docs.py`` runs it).
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import sys
import tokenize
from pathlib import Path

import click

from .config import Config

ROOT = Path(__file__).resolve().parent.parent
INTERNAL = {"testing", "extra"}  # not settings an operator sets


# --- configuration -------------------------------------------------------------------------------

def setting_comments(source: str | None = None) -> dict[str, str]:
    """``{field: description}`` from the comments in ``class Config``: the trailing comment of the
    field's line, else the comment lines right above it (section rules ``# ---`` excluded)."""
    source = source if source is not None else (Path(__file__).parent / "config.py").read_text(encoding="utf-8")
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Config")
    out: dict[str, str] = {}
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        name, line = node.target.id, node.lineno
        text = comments.get(line, "") if "#" in lines[line - 1] else ""
        if not text:
            above, i = [], line - 1
            while i >= 1 and lines[i - 1].strip().startswith("#") and not lines[i - 1].strip().startswith("# ---"):
                above.insert(0, comments.get(i, ""))
                i -= 1
            text = " ".join(above)
        out[name] = text
    return out


def _default(f: dataclasses.Field) -> str:
    value = f.default if f.default is not dataclasses.MISSING else None
    if isinstance(value, Path):
        return f"`{value}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value in ("", None):
        return "—"
    if isinstance(value, int) and f.name.endswith("_bytes") and value >= 1024**2:
        for unit, size in (("GiB", 1024**3), ("MiB", 1024**2)):
            if value % size == 0:
                return f"{value // size} {unit}"
    return f"`{value}`"


def settings() -> list[tuple[str, str, str]]:
    """``(variable, default, meaning)`` of every setting; raises when one has no description."""
    described = setting_comments()
    rows, missing = [], []
    for f in dataclasses.fields(Config):
        if f.name in INTERNAL:
            continue
        text = described.get(f.name, "")
        if not text:
            missing.append(f.name)
        rows.append((f"EXCHANGE_{f.name.upper()}", _default(f), text))
    if missing:
        raise ValueError("settings without a description (a comment beside or above them in "
                         f"exchange/config.py): {', '.join(missing)}")
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def config_table() -> str:
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    lines += [f"| `{var}` | {_cell(default)} | {_cell(text)} |" for var, default, text in settings()]
    return "\n".join(lines)


# --- commands ------------------------------------------------------------------------------------

def _walk(cmd: click.Command, path: list[str]):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            yield from _walk(cmd.commands[name], [*path, name])


def _usage(cmd: click.Command, path: list[str]) -> str:
    ctx = click.Context(cmd, info_name=" ".join(path))
    return " ".join(cmd.collect_usage_pieces(ctx))


def command_list() -> str:
    """One line per command, for the README."""
    from .cli import main

    lines = []
    for path, cmd in _walk(main, ["exchange"]):
        if isinstance(cmd, click.Group):
            continue
        opts = [o for p in cmd.params if isinstance(p, click.Option) for o in p.opts if o.startswith("--")]
        args = " ".join(p.human_readable_name.upper() for p in cmd.params if isinstance(p, click.Argument))
        head = " ".join(path) + (f" {args}" if args else "")
        summary = (cmd.get_short_help_str(limit=100) or "").rstrip(".")
        lines.append(f"- `{head}`" + (f" [{', '.join(f'`{o}`' for o in opts)}]" if opts else "") + f" — {summary}")
    return "\n".join(lines)


def command_reference() -> str:
    from .cli import main

    out = ["# Command reference", "",
           "Generated from the `exchange` command's own definitions (`python -m exchange.docgen`); "
           "`exchange COMMAND --help` prints the same.", ""]
    for path, cmd in _walk(main, ["exchange"]):
        if isinstance(cmd, click.Group) and path != ["exchange"]:
            continue
        out.append(f"## `{' '.join(path)}`")
        out.append("")
        out.append("```")
        out.append(f"Usage: {' '.join(path)} {_usage(cmd, path)}".rstrip())
        out.append("```")
        out.append("")
        if cmd.help:
            out.append(inspect.cleandoc(cmd.help))
            out.append("")
        rows = []
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                default = ""
                if p.show_default and p.default not in (None, False):
                    default = f" (default: {p.default})"
                text = (p.help or ("prompted for when not given" if p.prompt else "")).strip() + default
                rows.append(f"- `{', '.join(p.opts)}`{'' if p.is_flag else ' VALUE'}"
                            + (f" — {text.strip()}" if text.strip() else ""))
            elif isinstance(p, click.Argument):
                rows.append(f"- `{p.human_readable_name.upper()}` (argument)")
        if rows:
            out.extend(rows)
            out.append("")
    return "\n".join(out).rstrip() + "\n"


# --- files ---------------------------------------------------------------------------------------

def blocks() -> dict[str, str]:
    return {"config": config_table(), "commands": command_list()}


def render_blocks(text: str, generated: dict[str, str]) -> str:
    for name, body in generated.items():
        start, end = f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"
        if start not in text:
            continue
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{start}\n{body}\n{end}{tail}"
    return text


FILES = ("README.md", "docs/deploy.md")


def expected_files(root: Path = ROOT) -> dict[Path, str]:
    generated = blocks()
    out = {root / name: render_blocks((root / name).read_text(encoding="utf-8"), generated) for name in FILES}
    out[root / "docs" / "commands.md"] = command_reference()
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    stale = []
    for path, text in expected_files().items():
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            stale.append(path)
            if "--check" not in argv:
                path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if '--check' in argv else 'rewrote'}: {path.relative_to(ROOT)}")
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
