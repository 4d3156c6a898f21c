"""Real LiteLLM, in library mode, logging through its own `generic_api` callback.

Run through `cargo xtask litellm`, with the venv of `cargo xtask fixtures`
(target/fixtures-venv, the pins of xtask/fixtures/requirements.txt).

For each requested `log_format` (json_array, ndjson, single; in that order), one
phase:
  1. `litellm.callbacks` is reset to two loggers: LiteLLM's own
     `GenericAPILogger(endpoint=..., headers=..., log_format=..., batch_size=...,
     flush_interval=..., max_retries=..., retry_delay=...)` from
     `litellm.integrations.generic_api.generic_api_callback`, then `Recorder`, a
     `CustomLogger` of ours that keeps every `kwargs["standard_logging_object"]`
     LiteLLM hands to callbacks (what GenericAPILogger queues and later sends).
  2. Mocked calls (`mock_response=`, no provider contacted), concurrently:
     `--completions` `acompletion`s, one streamed `acompletion`, one failing
     `acompletion` (`mock_response=Exception(...)`) and one `aembedding`.
     GenericAPILogger needs a running event loop (it starts its periodic flush
     with `asyncio.create_task` in `__init__`) and only has async hooks, so every
     call is async.
  3. Waits until Recorder has every record, then awaits the logger's
     `flush_queue()` (what its periodic flush calls) and checks its queue is empty.

Then writes every recorded `standard_logging_object` as one JSON line to
`--out`, phase by phase, each converted the way GenericAPILogger does before it
sends (`safe_json_structure`, the body of `safe_dumps`) at the moment the hook
saw it, and prints a one-line JSON summary on stdout.

Counting: the logger's HTTP client is wrapped to count POST attempts and their
outcomes (status code or exception class), and `_post_with_retries` to count
the POSTs that finally succeeded or failed (after LiteLLM's own retries) and the
records in each: a failed one is a batch LiteLLM dropped (`records_dropped`).

Network: every call is mocked; LITELLM_LOCAL_MODEL_COST_MAP=True and
LITELLM_OFFLINE_MODE=true keep LiteLLM on the cost map and tokenizers bundled in
the package; and an audit hook (`sys.addaudithook`) refuses, before any byte is
sent, every DNS lookup and connect to anything but loopback and the endpoint's
own host. A refused attempt is listed in the summary and fails the run.

Exit status: 0 if every phase recorded all its records, record ids are unique
across the run, no batch was dropped and nothing tried to leave loopback;
1 otherwise (the summary is still printed and `--out` still written).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib.metadata
import ipaddress
import json
import os
import socket
import sys
import time
import urllib.parse

FORMATS = ("json_array", "ndjson", "single")

# --- before LiteLLM is imported -------------------------------------------

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["LITELLM_OFFLINE_MODE"] = "true"
os.environ.setdefault("LITELLM_LOG", "ERROR")
# The endpoint is reached directly: a proxy from the environment would be a way
# out of loopback (and the audit hook would refuse it anyway).
for _proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_proxy, None)
# Headers from the environment would be merged into ours by GenericAPILogger.
os.environ.pop("GENERIC_LOGGER_HEADERS", None)
# Fake credentials: mocked calls never send them, but provider set-up looks for them.
os.environ["OPENAI_API_KEY"] = "sk-driver-not-a-real-key"
os.environ["ANTHROPIC_API_KEY"] = "sk-ant-driver-not-a-real-key"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--endpoint", required=True, help="URL GenericAPILogger POSTs to")
    p.add_argument("--token", help="sent as `Authorization: Bearer <token>`")
    p.add_argument("--out", required=True, help="file for the recorded standard_logging_objects (JSON lines)")
    p.add_argument("--format", default="all", choices=[*FORMATS, "all"], help="log_format(s) to run")
    p.add_argument("--max-retries", type=int, default=0, help="GenericAPILogger max_retries")
    p.add_argument("--retry-delay", type=float, default=0.2, help="GenericAPILogger retry_delay, seconds (doubles per retry)")
    p.add_argument("--batch-size", type=int, default=4, help="GenericAPILogger batch_size (records that trigger a POST)")
    p.add_argument("--flush-interval", type=float, default=1.0, help="GenericAPILogger flush_interval, seconds")
    p.add_argument("--timeout", type=float, default=10.0, help="GenericAPILogger timeout per POST, seconds")
    p.add_argument("--completions", type=int, default=6, help="plain completions per format")
    return p.parse_args()


ARGS = parse_args()

# --- network guard ---------------------------------------------------------

ENDPOINT_HOST = urllib.parse.urlsplit(ARGS.endpoint).hostname or ""
ALLOWED_NAMES = {"localhost", ENDPOINT_HOST.lower()}


def _resolve(host: str) -> set[str]:
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return set()


ALLOWED_ADDRESSES = _resolve(ENDPOINT_HOST) if ENDPOINT_HOST else set()
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
        if host is None or _loopback(host) or str(host).lower() in ALLOWED_NAMES:
            return
        BLOCKED.append(f"getaddrinfo {host}")
        raise PermissionError(f"drive.py: DNS lookup of {host!r} refused (loopback and the endpoint only)")
    if event == "socket.connect":
        address = args[1]
        if not isinstance(address, tuple):  # AF_UNIX and friends
            return
        host = address[0]
        if _loopback(host) or host in ALLOWED_ADDRESSES:
            return
        BLOCKED.append(f"connect {address}")
        raise PermissionError(f"drive.py: connect to {address!r} refused (loopback and the endpoint only)")


sys.addaudithook(_guard)

import litellm  # noqa: E402
from litellm.integrations.custom_logger import CustomLogger  # noqa: E402
from litellm.integrations.generic_api.generic_api_callback import GenericAPILogger  # noqa: E402
from litellm.litellm_core_utils.safe_json_dumps import safe_json_structure  # noqa: E402

# --- our loggers -------------------------------------------------------------


class Recorder(CustomLogger):
    """Keeps each standard_logging_object as JSON values, converted at once
    (LiteLLM may reuse or change the dict after the hook returns)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict] = []

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.records.append(safe_json_structure(kwargs.get("standard_logging_object")))

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self.records.append(safe_json_structure(kwargs.get("standard_logging_object")))


class CountingClient:
    """Wraps GenericAPILogger's AsyncHTTPHandler: counts POST attempts and outcomes."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.attempts = 0
        self.outcomes: collections.Counter[str] = collections.Counter()

    async def post(self, *args, **kwargs):
        self.attempts += 1
        try:
            response = await self._inner.post(*args, **kwargs)
        except Exception as e:
            status = getattr(getattr(e, "response", None), "status_code", None)
            self.outcomes[str(status) if status is not None else type(e).__name__] += 1
            raise
        self.outcomes[str(response.status_code)] += 1
        return response

    def __getattr__(self, name):
        return getattr(self._inner, name)


def records_in(data: str, log_format: str) -> int:
    if log_format == "json_array":
        return len(json.loads(data))
    if log_format == "ndjson":
        return len(data.split("\n"))
    return 1


def instrument(logger: GenericAPILogger, stats: dict) -> None:
    logger.async_httpx_client = CountingClient(logger.async_httpx_client)
    stats["client"] = logger.async_httpx_client
    original = logger._post_with_retries

    async def post_with_retries(data: str):
        n = records_in(data, logger.log_format)
        try:
            response = await original(data)
        except Exception:
            stats["posts_failed"] += 1
            stats["records_dropped"] += n
            raise
        stats["posts_ok"] += 1
        stats["records_sent"] += n
        stats["largest_post_records"] = max(stats["largest_post_records"], n)
        return response

    logger._post_with_retries = post_with_retries


# --- the workload -----------------------------------------------------------

MODELS = ["gpt-4o-mini", "anthropic/claude-sonnet-4-5-20250929", "gpt-4.1-nano"]


def messages(text: str) -> list[dict]:
    return [{"role": "system", "content": "You are a concise assistant."}, {"role": "user", "content": text}]


async def completion(fmt: str, i: int) -> str:
    await litellm.acompletion(
        model=MODELS[i % len(MODELS)],
        messages=messages(f"[{fmt} #{i}] What is {i} + {i}? Grüße, 你好."),
        mock_response=f"{i} + {i} = {2 * i}.",
        user=f"user-{i % 3}",
        metadata={"tags": ["drive", f"format:{fmt}"], "case": i},
    )
    return "completion"


async def streamed(fmt: str) -> str:
    stream = await litellm.acompletion(
        model="gpt-4o-mini",
        messages=messages(f"[{fmt}] Count from one to five."),
        mock_response="One, two, three, four, five.",
        stream=True,
        metadata={"tags": ["drive", "stream", f"format:{fmt}"]},
    )
    async for _chunk in stream:
        pass
    return "stream"


async def failure(fmt: str) -> str:
    try:
        await litellm.acompletion(
            model="gpt-4o-mini",
            messages=messages(f"[{fmt}] This call fails inside the provider."),
            mock_response=Exception("upstream exploded: connection reset by peer"),
            metadata={"tags": ["drive", "failure", f"format:{fmt}"]},
        )
    except Exception:  # the failure is the point; the hooks record it
        return "failure"
    raise SystemExit("the mocked failure did not raise")


async def embedding(fmt: str) -> str:
    await litellm.aembedding(
        model="text-embedding-3-small",
        input=[f"[{fmt}] first document", "second document"],
        mock_response=[0.5, -0.25, 0.125],
        metadata={"tags": ["drive", "embedding", f"format:{fmt}"]},
    )
    return "embedding"


RECORD_TIMEOUT = 30.0  # seconds for LiteLLM's logging tasks to reach the hooks


async def phase(fmt: str, summary: dict) -> list[dict]:
    litellm.logging_callback_manager._reset_all_callbacks()
    before = asyncio.all_tasks()
    logger = GenericAPILogger(
        endpoint=ARGS.endpoint,
        headers={"Authorization": f"Bearer {ARGS.token}"} if ARGS.token else {},
        log_format=fmt,
        batch_size=ARGS.batch_size,
        flush_interval=ARGS.flush_interval,
        max_retries=ARGS.max_retries,
        retry_delay=ARGS.retry_delay,
        timeout=ARGS.timeout,
    )
    periodic = asyncio.all_tasks() - before  # the periodic flush __init__ started
    stats: dict = {"posts_ok": 0, "posts_failed": 0, "records_sent": 0, "records_dropped": 0, "largest_post_records": 0}
    instrument(logger, stats)
    recorder = Recorder()
    # Order matters only for reading: the logger has queued a record before the
    # recorder sees it.
    litellm.callbacks = [logger, recorder]

    started = time.monotonic()
    calls = [completion(fmt, i) for i in range(ARGS.completions)] + [streamed(fmt), failure(fmt), embedding(fmt)]
    kinds = collections.Counter(await asyncio.gather(*calls))
    expected = len(calls)
    deadline = time.monotonic() + RECORD_TIMEOUT
    while len(recorder.records) < expected:
        if time.monotonic() > deadline:
            raise SystemExit(f"{fmt}: {len(recorder.records)} of {expected} records reached the callbacks")
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # any extra (unexpected) hook call
    await logger.flush_queue()
    if logger.log_queue:
        raise SystemExit(f"{fmt}: {len(logger.log_queue)} records still queued after flush_queue()")
    for task in periodic:
        task.cancel()
    client = stats.pop("client")
    summary[fmt] = {
        "records": len(recorder.records),
        "kinds": dict(sorted(kinds.items())),
        "status": dict(collections.Counter(str(r.get("status")) for r in recorder.records)),
        "post_attempts": client.attempts,
        "post_outcomes": dict(sorted(client.outcomes.items())),
        **stats,
        "seconds": round(time.monotonic() - started, 3),
    }
    return recorder.records


async def run() -> tuple[list[dict], dict]:
    formats = FORMATS if ARGS.format == "all" else (ARGS.format,)
    records: list[dict] = []
    per_format: dict = {}
    for fmt in formats:
        records.extend(await phase(fmt, per_format))
    return records, per_format


def main() -> int:
    litellm.suppress_debug_info = True
    started = time.monotonic()
    records, per_format = asyncio.run(run())
    ids = collections.Counter(str(r.get("id")) for r in records)
    duplicate_ids = sorted(i for i, n in ids.items() if n > 1)
    with open(ARGS.out, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    dropped = sum(p["records_dropped"] for p in per_format.values())
    summary = {
        "litellm": importlib.metadata.version("litellm"),
        "endpoint": ARGS.endpoint,
        "records": len(records),
        "kinds": dict(sum((collections.Counter(p["kinds"]) for p in per_format.values()), collections.Counter())),
        "unique_ids": not duplicate_ids,
        "formats": per_format,
        "records_dropped": dropped,
        "blocked_network": BLOCKED,
        "seconds": round(time.monotonic() - started, 3),
    }
    print(json.dumps(summary), flush=True)
    problems = []
    if duplicate_ids:
        problems.append(f"record ids repeat: {duplicate_ids}")
    if dropped:
        problems.append(f"LiteLLM dropped {dropped} records (a POST failed after its retries)")
    if BLOCKED:
        problems.append(f"refused attempts to leave loopback: {BLOCKED}")
    for problem in problems:
        print(f"drive.py: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
