"""The `seed` section of `cargo xtask bench`: real LiteLLM 1.110.2 (library mode,
mocked calls) under a steady load of completions, logging through LiteLLM's own
`AzureBlobStorageLogger`, through its `GenericAPILogger` to `llm-log-shipper`,
or through nothing (the floor). Run by xtask/src/bench.rs in
target/seed-bench-venv (xtask/fixtures/requirements.txt plus
xtask/litellm/bench_seed_requirements.txt).

Subcommands:

  run --variant none|azure|generic --rate R --seconds S [--endpoint URL] [--dfs-endpoint URL]
      Schedules R*S `acompletion`s (`mock_response=`, no provider contacted),
      one every 1/R s whatever the earlier ones are doing (open loop), prints
      `STARTED <unix time>` when the first is due, waits until every record has
      left the logger (or --drain-timeout), and prints one JSON line: latency
      p50/p99 (from the moment each call was due, so time spent waiting for a
      busy event loop counts), the process's CPU (user + system, all threads)
      from the first call until the logger had sent everything, and what the
      logger did.

      azure: `AzureBlobStorageLogger()` as LiteLLM builds it, given
      AZURE_STORAGE_ACCOUNT_NAME / AZURE_STORAGE_ACCOUNT_KEY /
      AZURE_STORAGE_FILE_SYSTEM from the environment. PATCHED so that it runs
      outside the proxy: `_premium_user_check` does nothing (it imports
      `premium_user` from `litellm.proxy.proxy_server`, which fails in library
      mode, and the logger then drops every record), and the
      `azure_storage_dfs_endpoint` property returns --dfs-endpoint (it is
      hard-wired to https://<account>.dfs.core.windows.net). INSTRUMENTED
      (counting wrappers that change nothing): the Azure SDK's
      `AioHttpTransport.send`, which every storage request and every retry of
      the SDK goes through (the storage requests per record), and the logger's
      `_upload_bytes_with_account_key` (uploads that returned or raised, and
      when the last one returned). The file system is created before the clock
      starts (the logger never creates it).

      generic: `GenericAPILogger(endpoint=--endpoint, log_format="json_array")`
      with LiteLLM's defaults (batch 512 records or every 5 s) and
      `max_retries=5`, as docs/LITELLM.md configures the proxy.

  count --blob-endpoint URL --file-system NAME
      Reads back what is stored: every blob's name and size (List Blobs), and
      the records of every non-empty one (NDJSON or one JSON document; `.gz`
      decompressed); prints files, empty files, records, distinct ids.

  record --out FILE
      One real `standard_logging_object` (one mocked completion, no logger),
      less `model_map_information` (the proxy's
      `standard_logging_payload_excluded_fields`), with `"id": "@@ID@@"`, for
      the shipper's ingest benchmark (about 4 KB).

Network: an audit hook refuses DNS lookups and connects to anything but
loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import ipaddress
import json
import os
import socket
import sys
import time

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["LITELLM_OFFLINE_MODE"] = "true"
os.environ.setdefault("LITELLM_LOG", "ERROR")
for _proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_proxy, None)
os.environ.pop("GENERIC_LOGGER_HEADERS", None)
os.environ["OPENAI_API_KEY"] = "sk-bench-not-a-real-key"

AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
BLOCKED: list[str] = []


def _loopback(host: object) -> bool:
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _guard(event: str, args: tuple) -> None:
    if event == "socket.getaddrinfo":
        host = args[0]
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if host is None or _loopback(host) or str(host).lower() == "localhost":
            return
        BLOCKED.append(f"getaddrinfo {host}")
        raise PermissionError(f"bench_seed.py: DNS lookup of {host!r} refused (loopback only)")
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and not _loopback(address[0]):
            BLOCKED.append(f"connect {address}")
            raise PermissionError(f"bench_seed.py: connect to {address!r} refused (loopback only)")


sys.addaudithook(_guard)


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


# --- run ---------------------------------------------------------------------


def make_azure_logger(dfs_endpoint: str, stats: dict):
    from azure.core.pipeline.transport import AioHttpTransport

    from litellm.integrations.azure_storage.azure_storage import AzureBlobStorageLogger

    # The two patches this harness needs (see the module doc).
    AzureBlobStorageLogger._premium_user_check = lambda self: None
    AzureBlobStorageLogger.azure_storage_dfs_endpoint = property(lambda self: dfs_endpoint)

    # Counting only: every request the SDK sends, retries included.
    send = AioHttpTransport.send

    async def counting_send(self, request, **kwargs):
        stats["storage_requests"] += 1
        try:
            response = await send(self, request, **kwargs)
        except Exception as e:
            key = type(e).__name__
            stats["storage_outcomes"][key] = stats["storage_outcomes"].get(key, 0) + 1
            raise
        key = str(response.status_code)
        stats["storage_outcomes"][key] = stats["storage_outcomes"].get(key, 0) + 1
        return response

    AioHttpTransport.send = counting_send

    logger = AzureBlobStorageLogger()
    upload = logger._upload_bytes_with_account_key

    async def counting_upload(file_path, content):
        try:
            await upload(file_path=file_path, content=content)
        except Exception:
            stats["uploads_failed"] += 1
            raise
        stats["uploads_ok"] += 1
        stats["last_landed"] = time.time()

    logger._upload_bytes_with_account_key = counting_upload
    return logger


async def create_file_system(dfs_endpoint: str) -> None:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.filedatalake.aio import DataLakeServiceClient

    name = os.environ["AZURE_STORAGE_FILE_SYSTEM"]
    async with DataLakeServiceClient(account_url=dfs_endpoint, credential=os.environ["AZURE_STORAGE_ACCOUNT_KEY"]) as c:
        try:
            await c.create_file_system(name)
        except ResourceExistsError:
            pass


async def one_completion(i: int) -> None:
    import litellm

    await litellm.acompletion(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": f"[bench #{i}] Summarise the plot of a short story in two sentences."},
        ],
        mock_response=f"Completion {i}: a traveller comes home and finds the house unchanged; only she has.",
        user=f"user-{i % 7}",
        metadata={"tags": ["bench", "seed"], "case": i},
    )


async def run(args: argparse.Namespace) -> dict:
    import litellm

    litellm.suppress_debug_info = True
    litellm.logging_callback_manager._reset_all_callbacks()
    stats: dict = {"enqueued": 0, "storage_requests": 0, "storage_outcomes": {}, "uploads_ok": 0, "uploads_failed": 0}
    # Warm-up outside the clock and before any logger: imports, the cost map.
    for i in range(3):
        await one_completion(-1 - i)
    await asyncio.sleep(0.5)
    logger = None
    if args.variant == "azure":
        await create_file_system(args.dfs_endpoint)
        logger = make_azure_logger(args.dfs_endpoint, stats)
    elif args.variant == "generic":
        from litellm.integrations.generic_api.generic_api_callback import GenericAPILogger

        logger = GenericAPILogger(endpoint=args.endpoint, headers={}, log_format="json_array", max_retries=5)
    if logger is not None:
        hook = logger.async_log_success_event

        async def counted(*a, **kw):
            stats["enqueued"] += 1
            return await hook(*a, **kw)

        logger.async_log_success_event = counted
        litellm.callbacks = [logger]


    n = int(round(args.rate * args.seconds))
    latencies: list[float] = []
    errors = 0

    async def timed(i: int, due: float) -> None:
        nonlocal errors
        try:
            await one_completion(i)
        except Exception:
            errors += 1
            return
        latencies.append(time.perf_counter() - due)

    loop = asyncio.get_running_loop()
    tasks = []
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    wall0 = time.time()
    print(f"STARTED {wall0:.6f}", flush=True)
    for i in range(n):
        due = t0 + i / args.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(timed(i, due)))
    await asyncio.gather(*tasks)
    t_calls = time.perf_counter()
    calls_end_wall = time.time()

    # Drain: every record handed to the logger, its queue empty, no send running.
    deadline = time.perf_counter() + args.drain_timeout
    drained = True
    while True:
        if logger is None:
            await asyncio.sleep(0.2)  # LiteLLM's own post-call tasks
            break
        idle = stats["enqueued"] >= n and not logger.log_queue and not logger.flush_lock.locked()
        if idle:
            break
        if time.perf_counter() > deadline:
            drained = False
            break
        await asyncio.sleep(0.05)
    cpu = time.process_time() - cpu0
    t_drained = time.perf_counter()

    latencies.sort()
    return {
        "variant": args.variant,
        "rate": args.rate,
        "completions": n,
        "errors": errors,
        "calls_s": round(t_calls - t0, 3),
        "achieved_rate": round(n / (t_calls - t0), 2) if t_calls > t0 else None,
        "started": wall0,
        "calls_end": calls_end_wall,
        "drain_s": round(t_drained - t_calls, 3),
        "drained": drained,
        "queued_left": len(logger.log_queue) if logger is not None else 0,
        "cpu_s": round(cpu, 4),
        "latency_p50_ms": round(percentile(latencies, 0.50) * 1e3, 3) if latencies else None,
        "latency_p99_ms": round(percentile(latencies, 0.99) * 1e3, 3) if latencies else None,
        "latency_max_ms": round(latencies[-1] * 1e3, 3) if latencies else None,
        "records_enqueued": stats["enqueued"],
        "storage_requests": stats["storage_requests"],
        "storage_outcomes": stats["storage_outcomes"],
        "uploads_ok": stats["uploads_ok"],
        "uploads_failed": stats["uploads_failed"],
        "last_landed": stats.get("last_landed"),
        "blocked_network": BLOCKED,
    }


# --- count -------------------------------------------------------------------


def count(args: argparse.Namespace) -> dict:
    from azure.storage.blob import ContainerClient

    container = ContainerClient(
        account_url=args.blob_endpoint,
        container_name=args.file_system,
        credential={"account_name": "devstoreaccount1", "account_key": AZURITE_KEY},
    )
    files = empty = records = 0
    ids: dict[str, int] = {}
    for blob in container.list_blobs(include=["metadata"]):
        if blob.size == 0:
            # A directory of the DFS view, or a file created and never flushed.
            if not (blob.metadata or {}).get("hdi_isfolder") and not blob.name.endswith("/"):
                empty += 1
            continue
        files += 1
        if args.one_record_per_file:
            # AzureBlobStorageLogger: `<date>/<id>.json`, one record each.
            records += 1
            rid = blob.name.rsplit("/", 1)[-1].removesuffix(".json")
            ids[rid] = ids.get(rid, 0) + 1
            continue
        data = container.download_blob(blob.name).readall()
        if blob.name.endswith(".gz"):
            data = gzip.decompress(data)
        text = data.decode("utf-8").strip()
        docs = [text] if text.startswith("{") and "\n" not in text else [line for line in text.split("\n") if line.strip()]
        for doc in docs:
            record = json.loads(doc)
            records += 1
            rid = str(record.get("id"))
            ids[rid] = ids.get(rid, 0) + 1
    return {
        "files": files,
        "empty_files": empty,
        "records": records,
        "distinct_ids": len(ids),
        "duplicates": sum(n - 1 for n in ids.values() if n > 1),
    }


# --- record ------------------------------------------------------------------


async def record(args: argparse.Namespace) -> dict:
    import litellm
    from litellm.integrations.custom_logger import CustomLogger
    from litellm.litellm_core_utils.safe_json_dumps import safe_json_structure

    got: list[dict] = []

    class Keep(CustomLogger):
        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            got.append(safe_json_structure(kwargs.get("standard_logging_object")))

    litellm.suppress_debug_info = True
    litellm.callbacks = [Keep()]
    await one_completion(0)
    for _ in range(500):
        if got:
            break
        await asyncio.sleep(0.01)
    rec = got[0]
    rec.pop("model_map_information", None)
    rec["id"] = "@@ID@@"
    text = json.dumps(rec, separators=(",", ":"), ensure_ascii=False)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    return {"bytes": len(text.encode("utf-8"))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--variant", required=True, choices=["none", "azure", "generic"])
    r.add_argument("--rate", type=float, required=True)
    r.add_argument("--seconds", type=float, required=True)
    r.add_argument("--endpoint", help="the shipper's POST URL (generic)")
    r.add_argument("--dfs-endpoint", help="account URL of the DFS endpoint (azure)")
    r.add_argument("--drain-timeout", type=float, default=180.0)
    c = sub.add_parser("count")
    c.add_argument("--blob-endpoint", required=True)
    c.add_argument("--file-system", required=True)
    c.add_argument("--one-record-per-file", action="store_true", help="count non-empty files, ids from their names")
    rec = sub.add_parser("record")
    rec.add_argument("--out", required=True)
    args = p.parse_args()
    if args.cmd == "run":
        out = asyncio.run(run(args))
    elif args.cmd == "count":
        out = count(args)
    else:
        out = asyncio.run(record(args))
    print(json.dumps(out), flush=True)
    return 1 if BLOCKED else 0


if __name__ == "__main__":
    sys.exit(main())
