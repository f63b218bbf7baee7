"""Small units (issue 10): no module of initlab above about 500 lines, no function above 80
body lines (docstrings not counted)."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "src" / "initlab"


def _files():
    yield from sorted(ROOT.rglob("*.py"))


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring does not count
    return node.end_lineno - body[0].lineno + 1


def test_modules_are_small():
    big = [str(p.relative_to(ROOT)) for p in _files() if len(p.read_text().splitlines()) > 500]
    assert not big, big


def test_functions_are_small():
    long = []
    for path in _files():
        for node in ast.walk(ast.parse(path.read_text())):
            is_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            if is_function and _body_lines(node) > 80:
                long.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert not long, long
