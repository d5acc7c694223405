"""What is left of issue 30's size rules: library files over 500 lines, functions over 80 lines, and functions
taking more than 15 parameters (in cli/, a command's parameters are its typer options: listed, marked as such).

    python scripts/sizes.py            # prints each, then the counts; exit 0 (a report, not a test)
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "biasaudit"
MAX_FILE, MAX_FUNCTION, MAX_PARAMETERS = 500, 80, 15


def main() -> None:
    files, functions, parameters = [], [], []
    for path in sorted(ROOT.rglob("*.py")):
        src = path.read_text(encoding="utf-8")
        rel = path.relative_to(ROOT.parent)
        if len(src.splitlines()) > MAX_FILE:
            files.append((len(src.splitlines()), f"{rel}"))
        for node in ast.walk(ast.parse(src)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            length = node.end_lineno - node.lineno + 1
            a = node.args
            n = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs)
            command = " (a command: its options)" if rel.parts[1] == "cli" and n > MAX_PARAMETERS else ""
            if length > MAX_FUNCTION:
                functions.append((length, f"{rel}:{node.lineno} {node.name}{command}"))
            if n > MAX_PARAMETERS:
                parameters.append((n, f"{rel}:{node.lineno} {node.name}{command}"))
    for title, rows, unit in ((f"files over {MAX_FILE} lines", files, "lines"),
                              (f"functions over {MAX_FUNCTION} lines", functions, "lines"),
                              (f"functions over {MAX_PARAMETERS} parameters", parameters, "parameters")):
        print(f"{title}: {len(rows)}")
        for n, where in sorted(rows, reverse=True):
            print(f"  {n:>5} {unit}  {where}")


if __name__ == "__main__":
    main()
