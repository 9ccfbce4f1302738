"""CSV files, one reader and one writer for the whole package (manifests, benchmark tables).

``write_csv(path, columns, rows)`` writes dict rows with exactly ``columns`` (extra keys
ignored; None and NaN become empty cells) through a temporary file and a rename, so a
reader never sees half a file. ``read_csv(path)`` returns the rows as dicts of strings.
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


def read_csv(path: Union[str, Path]) -> List[Dict[str, str]]:
    """Rows of a CSV file with a header line, as dicts of strings."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
