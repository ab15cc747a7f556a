"""pairs_without.py IN.csv OUT.csv SOURCE...: the rows of a pairs table whose source brain is none of SOURCE."""

import csv
import sys

source, target, *dropped = sys.argv[1:]
with open(source, newline="") as handle:
    rows = list(csv.DictReader(handle))
with open(target, "w", newline="") as handle:
    writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(row for row in rows if row["source"] not in dropped)
