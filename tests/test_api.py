"""The lazy public API: every name in ``__all__`` resolves, and editors see the same names."""

from __future__ import annotations

import ast
import pathlib

import initlab


def test_every_public_name_resolves():
    for name in initlab.__all__:
        assert getattr(initlab, name) is not None, name


def test_type_checking_block_lists_every_export():
    tree = ast.parse(pathlib.Path(initlab.__file__).read_text())
    seen = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    seen |= {alias.name for alias in stmt.names}
    assert set(initlab._EXPORTS) | set(initlab._MODULES) == seen


def test_unknown_attribute_is_an_attribute_error():
    try:
        initlab.no_such_name  # noqa: B018
    except AttributeError as error:
        assert "no_such_name" in str(error)
    else:
        raise AssertionError("initlab.no_such_name resolved")
