"""A CSV file rendered as a text table, with the `tabulate` package from PyPI.

Input: a CSV file CID. Params: `format` — any tabulate format (default "github"),
`limit` — at most this many rows (default 50). Output: the table as text.
"""
import csv
import io

from tabulate import tabulate


def main(input, params):
    fmt = params.get("format", "github")
    limit = int(params.get("limit", "50"))
    reader = csv.reader(io.TextIOWrapper(input, encoding="utf-8", newline=""))
    header = next(reader, None)
    if header is None:
        return ""
    rows = [row for _, row in zip(range(limit), reader)]
    return tabulate(rows, headers=header, tablefmt=fmt) + "\n"
