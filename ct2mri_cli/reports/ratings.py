"""Ratings a reader saved from a report (CSV: case, rating, note), to load back into a new one."""

from __future__ import annotations

from pathlib import Path

from ..errors import Ct2mriError
from ..io.cases import read_case_csv

RATINGS = ("pass", "check", "fail")
COLUMNS = ("case", "rating", "note")


def read_ratings(path: Path) -> dict[str, dict[str, str]]:
    """``{case: {"rating": ..., "note": ...}}`` from a ratings CSV; a rating other than pass, check,
    fail or empty is a one-line error naming the line."""
    ratings: dict[str, dict[str, str]] = {}
    for row in read_case_csv(path, required=COLUMNS[:1], optional=COLUMNS[1:]):
        rating = row.get("rating", "").lower()
        if rating not in ("", *RATINGS):
            raise Ct2mriError(f"{path}: line {row['_line']}: rating {row['rating']!r} is not pass, check or fail")
        if rating or row.get("note"):
            ratings[row["case"]] = {"rating": rating, "note": row.get("note", "")}
    return ratings
