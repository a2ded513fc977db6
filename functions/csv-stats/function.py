"""Column statistics of a CSV file.

Input: a CSV file CID with a header row. Params: `column` (optional) — only this column;
`delimiter` (default ","). Output: JSON, per numeric column: count, min, max, mean, stdev,
median; non-numeric cells are counted as `skipped`.
"""
import csv
import io
import math
import statistics


def main(input, params):
    delimiter = params.get("delimiter", ",")
    text = io.TextIOWrapper(input, encoding="utf-8", newline="")
    reader = csv.DictReader(text, delimiter=delimiter)
    if reader.fieldnames is None:
        raise ValueError("the input is empty: expected a CSV header row")
    wanted = params.get("column")
    if wanted is not None and wanted not in reader.fieldnames:
        raise KeyError(f"no column {wanted!r}; columns are {reader.fieldnames}")
    columns = [wanted] if wanted else list(reader.fieldnames)
    values = {c: [] for c in columns}
    skipped = {c: 0 for c in columns}
    rows = 0
    for row in reader:
        rows += 1
        for c in columns:
            cell = (row.get(c) or "").strip()
            try:
                v = float(cell)
            except ValueError:
                skipped[c] += 1
                continue
            if math.isfinite(v):
                values[c].append(v)
            else:
                skipped[c] += 1
    out = {}
    for c in columns:
        vs = values[c]
        if not vs:
            out[c] = {"count": 0, "skipped": skipped[c]}
            continue
        out[c] = {
            "count": len(vs),
            "skipped": skipped[c],
            "min": min(vs),
            "max": max(vs),
            "mean": statistics.fmean(vs),
            "stdev": statistics.stdev(vs) if len(vs) > 1 else 0.0,
            "median": statistics.median(vs),
        }
    return {"rows": rows, "columns": out}
