"""Times a typical query over one day of logs in one format, with polars:
cost and requests per model per hour (of the requests' start time).

    formats_query.py --dir D --format F [--repeat 3]

D holds the hive tree `formats files` wrote for F. Prints one
`RESULT {json}` line: the median wall time of `repeat` runs (a fresh scan
each, so the files are read every time), and the rows the query saw (the
runner checks it against the records written).
"""

import argparse
import json
import statistics
import time

import polars as pl


def query(d, fmt):
    if fmt == "parquet":
        lf = pl.scan_parquet(f"{d}/**/*.parquet", hive_partitioning=True)
        hour = pl.col("start_time").dt.truncate("1h")
    else:
        lf = pl.scan_ndjson(
            f"{d}/**/*.{fmt}",
            schema_overrides={"startTime": pl.Float64, "response_cost": pl.Float64},
        )
        hour = pl.from_epoch((pl.col("startTime") * 1e6).cast(pl.Int64), time_unit="us").dt.truncate("1h")
    return (
        lf.group_by("model", hour.alias("hour"))
        .agg(pl.len().alias("requests"), pl.col("response_cost").sum().alias("cost"))
        .sort("model", "hour")
        .collect()
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--format", required=True)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    times = []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        df = query(a.dir, a.format)
        times.append(time.perf_counter() - t0)
    print("RESULT " + json.dumps({
        "scenario": "query",
        "format": a.format,
        "seconds": statistics.median(times),
        "rows": int(df["requests"].sum()),
        "groups": df.height,
        "polars": pl.__version__,
    }))


if __name__ == "__main__":
    main()
