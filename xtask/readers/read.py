"""Reads files the logger wrote with readers nobody in this project wrote.

`tests/it/readers.rs` runs this (through `cargo xtask integration`, which
installs the pinned readers into `target/readers-venv`) and compares what each
reader says with what the test logged:

    read.py --connection-string CS --container C --prefix P --format F
            [--paths FILE] --out OUT.json

Readers, each on its own, each failure reported (never skipped):
- polars: `scan_parquet` / `scan_ndjson` over `az://` (object_store inside);
- pyarrow: a dataset on `adlfs`'s filesystem (Microsoft's Python SDK inside);
- duckdb: `read_parquet` / `read_ndjson` on the files downloaded with adlfs.

With `--paths` (one path per line, inside the container) the readers get the
files' paths instead of a listing: the independent DFS emulator lists
directories without a Content-Type, which object_store refuses.

Each reader answers: rows, distinct ids, per model (records, total tokens,
cost), failures per error class, and the hive partition columns it saw.
"""

import argparse
import json
import os
import sys
import tempfile
import traceback


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--connection-string", required=True)
    p.add_argument("--container", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--format", required=True, choices=["ndjson", "ndjson.gz", "ndjson.zst", "parquet"])
    p.add_argument("--paths")
    p.add_argument("--out", required=True)
    return p.parse_args()


def conn_parts(cs):
    parts = dict(kv.split("=", 1) for kv in cs.split(";") if "=" in kv)
    return parts["AccountName"], parts["AccountKey"], parts["BlobEndpoint"].rstrip("/")


def summary(rows, ids, by_model, failures, partitions):
    """`partitions`: "year/month/day/hour" with numbers as numbers, or None
    when the reader has no way to see them."""
    if partitions is not None:
        partitions = sorted({"/".join(str(int(x)) for x in p.split("/")) for p in partitions})
    return {
        "rows": int(rows),
        "ids": int(ids),
        "by_model": {m: [int(n), int(t), float(c)] for m, (n, t, c) in by_model.items()},
        "failures": {str(k): int(v) for k, v in failures.items()},
        "partitions": partitions,
    }


# --- polars -----------------------------------------------------------------

def with_polars(args, paths):
    import polars as pl

    account, key, endpoint = conn_parts(args.connection_string)
    options = {
        "account_name": account,
        "account_key": key,
        "endpoint": endpoint,
        "allow_http": "true",
    }
    ext = args.format
    if paths is None:
        source = f"az://{args.container}/{args.prefix}/**/*.{ext}"
    else:
        source = [f"az://{args.container}/{p}" for p in paths]
    if ext == "parquet":
        lf = pl.scan_parquet(source, storage_options=options, hive_partitioning=True)
        error_class = pl.col("error_class")
    else:
        # scan_ndjson has no hive partitioning: the partitions come from the
        # file paths it reports
        lf = pl.scan_ndjson(source, storage_options=options, infer_schema_length=None, include_file_paths="file")
        lf = lf.with_columns(
            *[pl.col("file").str.extract(rf"/{k}=(\d+)/").cast(pl.Int32).alias(k) for k in ["year", "month", "day", "hour"]]
        )
        error_class = pl.col("error_information").struct.field("error_class")
    df = lf.select(
        pl.col("id"),
        pl.col("model"),
        pl.col("status"),
        pl.col("total_tokens"),
        pl.col("response_cost"),
        error_class.alias("error_class"),
        pl.col("year"),
        pl.col("month"),
        pl.col("day"),
        pl.col("hour"),
    ).collect()
    by_model = {
        r["model"]: (r["n"], r["tokens"], r["cost"])
        for r in df.group_by("model")
        .agg(pl.len().alias("n"), pl.col("total_tokens").sum().alias("tokens"), pl.col("response_cost").sum().alias("cost"))
        .iter_rows(named=True)
    }
    failures = {
        r["error_class"]: r["n"]
        for r in df.filter(pl.col("status") == "failure").group_by("error_class").agg(pl.len().alias("n")).iter_rows(named=True)
    }
    partitions = {"/".join(str(x) for x in r) for r in df.select("year", "month", "day", "hour").unique().iter_rows()}
    return summary(df.height, df["id"].n_unique(), by_model, failures, partitions)


# --- pyarrow on adlfs ---------------------------------------------------------

# Microsoft's Python SDK sends its newest x-ms-version, which the emulators
# here do not know yet (they answer 400); pin one they accept. Test glue for
# the emulators only: against Azure the SDK's default is right.
API_VERSION = "2025-11-05"


def adlfs_fs(args):
    import adlfs
    from azure.storage.blob.aio import BlobServiceClient

    original = BlobServiceClient.from_connection_string.__func__
    if not getattr(original, "_pinned", False):

        def pinned(cls, conn_str, credential=None, **kwargs):
            kwargs.setdefault("api_version", API_VERSION)
            return original(cls, conn_str, credential=credential, **kwargs)

        pinned._pinned = True
        BlobServiceClient.from_connection_string = classmethod(pinned)
    return adlfs.AzureBlobFileSystem(connection_string=args.connection_string)


def with_pyarrow(args, paths):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.json as pj

    fs = adlfs_fs(args)
    ext = args.format
    base = f"{args.container}/{args.prefix}"
    if paths is None:
        files = [p for p in fs.find(base) if p.endswith("." + ext)]
    else:
        files = [f"{args.container}/{p}" for p in paths]
    if ext == "parquet":
        dataset = ds.dataset(
            files,
            filesystem=fs,
            format="parquet",
            partitioning=ds.partitioning(flavor="hive"),
            partition_base_dir=base,
        )
        table = dataset.to_table()
    else:
        # Only the columns the questions need, typed: pyarrow's JSON schema
        # inference fails on LiteLLM records (a message's `content` is a
        # string in one record and a list of parts in the next), and its
        # datasets do not decompress JSON, so each file is read on its own
        # through a decompressing stream.
        schema = pa.schema(
            [
                ("id", pa.string()),
                ("model", pa.string()),
                ("status", pa.string()),
                ("total_tokens", pa.int64()),
                ("response_cost", pa.float64()),
                ("error_information", pa.struct([("error_class", pa.string())])),
            ]
        )
        options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
        codec = {"ndjson": None, "ndjson.gz": "gzip", "ndjson.zst": "zstd"}[ext]
        tables = []
        for f in files:
            with fs.open(f, "rb") as raw:
                stream = pa.PythonFile(raw, mode="r")
                if codec:
                    stream = pa.CompressedInputStream(stream, codec)
                tables.append(pj.read_json(stream, parse_options=options))
        table = pa.concat_tables(tables)
        table = table.append_column("error_class", pc.struct_field(table["error_information"], "error_class"))
    by_model = {
        r["model"]: (r["id_count"], r["total_tokens_sum"], r["response_cost_sum"])
        for r in table.group_by("model")
        .aggregate([("id", "count"), ("total_tokens", "sum"), ("response_cost", "sum")])
        .to_pylist()
    }
    failed = table.filter(pc.equal(table["status"], "failure"))
    failures = {r["error_class"]: r["id_count"] for r in failed.group_by("error_class").aggregate([("id", "count")]).to_pylist()}
    partitions = None
    if "hour" in table.column_names:
        keys = ["year", "month", "day", "hour"]
        partitions = {"/".join(str(r[k]) for k in keys) for r in table.select(keys).group_by(keys).aggregate([]).to_pylist()}
    return summary(table.num_rows, len(pc.unique(table["id"])), by_model, failures, partitions)


# --- duckdb on downloaded files ------------------------------------------------

def with_duckdb(args, paths):
    import duckdb

    fs = adlfs_fs(args)
    ext = args.format
    with tempfile.TemporaryDirectory() as tmp:
        if paths is None:
            base = f"{args.container}/{args.prefix}"
            names = [p for p in fs.find(base) if p.endswith("." + ext)]
        else:
            names = [f"{args.container}/{p}" for p in paths]
        for name in names:
            local = os.path.join(tmp, name)
            os.makedirs(os.path.dirname(local), exist_ok=True)
            fs.get(name, local)
        pattern = os.path.join(tmp, args.container, args.prefix, "**", "*." + ext)
        con = duckdb.connect()
        # the queries of docs/QUERYING.md, on local paths
        if ext == "parquet":
            source = f"read_parquet('{pattern}', hive_partitioning = true)"
            error_class = "error_class"
        else:
            compression = {"ndjson": "none", "ndjson.gz": "gzip", "ndjson.zst": "zstd"}[ext]
            source = f"read_ndjson('{pattern}', compression = '{compression}', hive_partitioning = true)"
            error_class = "error_information->>'error_class'"
        rows, ids = con.execute(f"SELECT count(*), count(DISTINCT id) FROM {source}").fetchone()
        by_model = {
            m: (n, t, c)
            for m, n, t, c in con.execute(
                f"SELECT model, count(*) AS requests, sum(total_tokens) AS tokens, sum(response_cost) AS cost "
                f"FROM {source} GROUP BY model ORDER BY model"
            ).fetchall()
        }
        failures = dict(
            con.execute(
                f"SELECT {error_class} AS error_class, count(*) AS failures FROM {source} "
                f"WHERE status = 'failure' GROUP BY error_class ORDER BY error_class"
            ).fetchall()
        )
        partitions = {
            "/".join(str(x) for x in r) for r in con.execute(f"SELECT DISTINCT year, month, day, hour FROM {source}").fetchall()
        }
        return summary(rows, ids, by_model, failures, partitions)


def main():
    args = parse_args()
    paths = None
    if args.paths:
        with open(args.paths) as f:
            paths = [line.strip() for line in f if line.strip()]
    out = {}
    for name, reader in [("polars", with_polars), ("pyarrow", with_pyarrow), ("duckdb", with_duckdb)]:
        try:
            out[name] = reader(args, paths)
        except Exception as e:  # reported, and the test fails on it
            out[name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    import duckdb
    import polars
    import pyarrow
    import adlfs

    out["versions"] = {
        "polars": polars.__version__,
        "pyarrow": pyarrow.__version__,
        "adlfs": adlfs.__version__,
        "duckdb": duckdb.__version__,
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
