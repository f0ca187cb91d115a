"""A CSV cell as a spreadsheet shows it. A leaf: imports nothing of hyperlab.

A text that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is read by spreadsheets as a formula
(`=HYPERLINK(...)` in a class name of a shared checkpoint, a swept value, a run's folder name): every CSV hyperlab
writes from names puts a `'` before such a cell, as spreadsheet exporters do (OWASP's "CSV injection")."""

import re

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet read a cell as a formula
PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")  # (read as a number: no formula)


def spreadsheet_text(value: object) -> object:
    """`value` for a CSV cell: a text that would start a formula gets a `'` before it, unless it is a number (`-1`,
    `-0.5`, a class of a table's target); anything else (numbers) as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value
