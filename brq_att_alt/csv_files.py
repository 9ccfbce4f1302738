"""CSV files, one reader and one writer for the whole package (manifests, benchmark tables).

``write_csv(path, columns, rows)`` writes dict rows with exactly ``columns`` (extra keys
ignored; None and NaN become empty cells) through a temporary file and a rename, so a
reader never sees half a file. ``read_csv(path)`` returns the rows as dicts of strings
(``required`` columns checked; other dialects, e.g. Common Voice's TSV, through ``fmt``);
``csv_columns(path)`` the header.
"""

import csv
import math
import os
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Union


def _cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def write_csv(path: Union[str, Path], columns: Sequence[str], rows: Iterable[Dict[str, object]]) -> Path:
    """Write ``rows`` (dicts) with exactly ``columns``, atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in columns})
    os.replace(tmp, path)
    return path


def read_csv(path: Union[str, Path], required: Sequence[str] = (), **fmt) -> List[Dict[str, str]]:
    """Rows of a CSV file with a header line, as dicts of strings; ValueError naming the
    ``required`` columns the header lacks. ``fmt``: ``csv`` format parameters (``delimiter`` ...)."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, **fmt)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} lacks the column(s) {missing} (its columns: {reader.fieldnames})")
        return list(reader)


def csv_columns(path: Union[str, Path]) -> List[str]:
    """The header (column names) of a CSV file; [] for an empty file."""
    with open(path, newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh), [])
