"""Compares what LiteLLM produced (drive.py's `--out`) with what reached
capture_server.py (its `--log`), for `cargo xtask litellm --self-check`.

    check.py --records FILE --capture FILE --summary FILE [--token T]

`--summary` is drive.py's summary line: its `formats` (in run order) with their
`records` counts say which lines of `--records` belong to which log_format.

Every POST the server answered 200 is parsed the way a receiver has to (one
JSON value: an array of records or one record; otherwise newline-separated
JSON values) and its records are matched by `id`. Fails unless every recorded
standard_logging_object arrived exactly once in a 200-answered POST of its own
format's phase, JSON-equal (parsed values compared, so key order and
whitespace do not matter), every POST carried the token (if given), and every
POST answered 503 was sent again with the same body. Prints what it saw on the
wire, per format, as one JSON line.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import sys


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--records", required=True)
    p.add_argument("--capture", required=True)
    p.add_argument("--summary", required=True)
    p.add_argument("--token")
    return p.parse_args()


def framing(body: str) -> tuple[str, list]:
    """How the body is framed and the records in it."""
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        lines = body.split("\n")
        framing = "ndjson" + (", trailing newline" if body.endswith("\n") else ", no trailing newline")
        return framing, [json.loads(line) for line in lines if line.strip()]
    if isinstance(value, list):
        return "JSON array", value
    return "one JSON object", [value]


def main() -> int:
    args = parse_args()
    with open(args.summary, encoding="utf-8") as f:
        summary = json.loads(f.read().strip().splitlines()[-1])
    with open(args.records, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    with open(args.capture, encoding="utf-8") as f:
        posts = [json.loads(line) for line in f if line.strip()]

    # Which format each recorded id belongs to.
    expected: dict[str, tuple[str, dict]] = {}
    offset = 0
    for fmt, stats in summary["formats"].items():
        for record in records[offset : offset + stats["records"]]:
            expected[record["id"]] = (fmt, record)
        offset += stats["records"]
    problems: list[str] = []
    if offset != len(records):
        problems.append(f"the summary counts {offset} records, --records holds {len(records)}")

    arrived: collections.Counter[str] = collections.Counter()
    wire: dict[str, dict] = {}
    failed_bodies: list[str] = []
    ok_bodies: list[str] = []
    for post in posts:
        headers = {k.lower(): v for k, v in post["headers"].items()}
        if args.token and headers.get("authorization") != f"Bearer {args.token}":
            problems.append(f"POST {post['n']} without the token")
        body = post.get("body")
        if body is None:
            body = base64.b64decode(post["body_base64"]).decode("utf-8", "replace")
            problems.append(f"POST {post['n']}: body is not UTF-8")
        if post["status"] == 503:
            failed_bodies.append(body)
            continue
        if post["status"] != 200:
            continue
        ok_bodies.append(body)
        kind, values = framing(body)
        formats = {expected.get(str(v.get("id")), ("unknown", None))[0] for v in values}
        fmt = formats.pop() if len(formats) == 1 else "mixed"
        if fmt in ("unknown", "mixed"):
            problems.append(f"POST {post['n']}: records of {fmt} format(s)")
        w = wire.setdefault(
            fmt,
            {
                "posts": 0,
                "framing": collections.Counter(),
                "content_type": collections.Counter(),
                "content_encoding": collections.Counter(),
                "records_per_post": [],
                "bytes_per_post": [],
            },
        )
        w["posts"] += 1
        w["framing"][kind] += 1
        w["content_type"][headers.get("content-type", "(none)")] += 1
        w["content_encoding"][headers.get("content-encoding", "(none)")] += 1
        w["records_per_post"].append(len(values))
        w["bytes_per_post"].append(len(body.encode("utf-8")))
        for value in values:
            rid = str(value.get("id"))
            arrived[rid] += 1
            if rid in expected and value != expected[rid][1]:
                problems.append(f"record {rid} ({expected[rid][0]}) arrived but is not JSON-equal to what LiteLLM logged")

    missing = sorted(rid for rid in expected if arrived[rid] == 0)
    duplicated = sorted(rid for rid, n in arrived.items() if n > 1)
    unexpected = sorted(rid for rid in arrived if rid not in expected)
    if missing:
        problems.append(f"{len(missing)} records never arrived: {missing}")
    if duplicated:
        problems.append(f"{len(duplicated)} records arrived more than once: {duplicated}")
    if unexpected:
        problems.append(f"{len(unexpected)} records arrived that LiteLLM's callbacks never saw: {unexpected}")
    not_retried = [b for b in failed_bodies if b not in ok_bodies]
    if not_retried:
        problems.append(f"{len(not_retried)} POSTs answered 503 were not sent again")

    report = {
        "records": len(records),
        "arrived_once": sum(1 for rid in expected if arrived[rid] == 1),
        "missing": len(missing),
        "duplicated": len(duplicated),
        "posts_answered_503": len(failed_bodies),
        "retried_with_same_body": len(failed_bodies) - len(not_retried),
        "wire": {
            fmt: {k: dict(v) if isinstance(v, collections.Counter) else v for k, v in w.items()}
            for fmt, w in wire.items()
        },
    }
    print(json.dumps(report), flush=True)
    for problem in problems:
        print(f"check.py: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
