"""Small units (issue 10): no module of the initializers and gradient-check packages above
about 500 lines, no function above 80 body lines. ``apply.py`` and its ``init_model`` are
owned by another change and listed until it lands."""

from __future__ import annotations

import ast
import pathlib

import initlab.gradient_check
import initlab.initializers

PACKAGES = (initlab.initializers, initlab.gradient_check)
LARGE_MODULES = {"apply.py"}
LONG_FUNCTIONS = {"apply.py:init_model"}


def _files():
    for package in PACKAGES:
        yield from sorted(pathlib.Path(package.__file__).parent.glob("*.py"))


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring does not count
    return node.end_lineno - body[0].lineno + 1


def test_modules_are_small():
    big = [p.name for p in _files() if len(p.read_text().splitlines()) > 500]
    assert set(big) <= LARGE_MODULES, big


def test_functions_are_small():
    long = []
    for path in _files():
        for node in ast.walk(ast.parse(path.read_text())):
            is_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            if is_function and _body_lines(node) > 80:
                long.append(f"{path.name}:{node.name}")
    assert set(long) <= LONG_FUNCTIONS, long
