"""Regenerate the bundled CrowS-Pairs file deterministically from the dataset's CSV.

    git clone https://github.com/nyu-mll/crows-pairs   # or any copy of data/crows_pairs_anonymized.csv
    python scripts/build_crows_pairs.py crows-pairs/data/crows_pairs_anonymized.csv
    # writes biasaudit/data/pairs/crows_pairs.jsonl.gz

Nothing but the format changes: one JSON object a row, in the CSV's order, with the row's index (the CSV's unnamed
first column) as ``id`` and the fields sent_more, sent_less, stereo_antistereo and bias_type as they are (the
crowdworkers' annotations and anonymised ids are left out). Gzip with a fixed mtime: the same CSV gives the same
bytes.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
from collections import Counter
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "biasaudit" / "data" / "pairs" / "crows_pairs.jsonl.gz"
FIELDS = ("sent_more", "sent_less", "stereo_antistereo", "bias_type")


def rows(csv_path: Path) -> list[dict]:
    with open(csv_path, encoding="utf-8", newline="") as f:
        return [{"id": int(r[""]), **{k: r[k] for k in FIELDS}} for r in csv.DictReader(f)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", type=Path, help="data/crows_pairs_anonymized.csv of nyu-mll/crows-pairs")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    recs = rows(a.csv)
    assert [r["id"] for r in recs] == list(range(len(recs))), "row indices are not 0..n-1 in order"
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs).encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(text)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_bytes(buf.getvalue())
    print(f"{len(recs)} pairs -> {a.out} ({len(buf.getvalue()):,} bytes)")
    print(dict(Counter(r["bias_type"] for r in recs).most_common()))


if __name__ == "__main__":
    main()
