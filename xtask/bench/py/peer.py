"""The Python peer of `cargo xtask bench`: the original callback's pattern.

One `BlobServiceClient` (Microsoft's `azure-storage-blob`, pinned in
requirements.txt) reused for every record; each record is serialized with
`json.dumps` and uploaded as its own blob, `{prefix}/{YYYY}-{MM}-{DD}/{id}.json`,
one call after the other, the way a synchronous logging callback does it.
Runs for a fixed time budget and prints one `RESULT {json}` line with the
records written and the HTTP requests they took (counted by a response hook).

usage: peer.py --endpoint URL --budget-s S
"""

import argparse
import json
import os
import time
import uuid

from azure.storage.blob import BlobServiceClient

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def gateway_record(producer, i):
    """The same shape as gateway_record in crates/llm-log-callback/examples/demo.rs."""
    model, provider = [("gpt-4o-mini", "openai"), ("claude-3-5-sonnet", "anthropic"), ("my-deployment", "azure")][i % 3]
    start = 1_764_000_000.0 + i * 0.001
    failed = i % 50 == 7
    return {
        "id": f"chatcmpl-{producer}-{i:08}",
        "trace_id": str(uuid.uuid4()),
        "call_type": "acompletion",
        "status": "failure" if failed else "success",
        "model": model,
        "model_group": model,
        "custom_llm_provider": provider,
        "api_base": "",
        "prompt_tokens": 200 + i % 800,
        "completion_tokens": 0 if failed else 40 + i % 300,
        "total_tokens": 240 + i % 800 + i % 300,
        "response_cost": 0.0000021 * (i % 97),
        "startTime": start,
        "endTime": start + 0.8,
        "completionStartTime": start + 0.3,
        "response_time": 0.8,
        "cache_hit": i % 11 == 0,
        "end_user": f"user-{i % 200}",
        "request_tags": ["prod", f"team-{i % 5}"],
        "metadata": {"user_api_key_team_id": f"team-{i % 5}", "user_api_key_alias": "gateway", "requester_ip_address": None},
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": f"Summarize ticket #{i} in two sentences."},
        ],
        "response": {} if failed else {"choices": [{"index": 0, "message": {"role": "assistant", "content": "The customer reports a billing error. Support refunded the duplicate charge."}}]},
        "error_str": "litellm.RateLimitError: rate limited" if failed else None,
        "model_parameters": {"temperature": 0.2, "max_tokens": 256},
        "hidden_params": {"api_base": "https://api.example.com/v1"},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True, help="path-style account URL")
    ap.add_argument("--budget-s", type=float, default=15.0)
    a = ap.parse_args()
    conn = f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={a.endpoint}"
    # the SDK's default API version is newer than Azurite 3.35 accepts; pin the
    # one the Rust client sends
    service = BlobServiceClient.from_connection_string(conn, api_version="2025-11-05")
    container_name = f"bench-py-{uuid.uuid4().hex[:12]}"
    container = service.create_container(container_name)
    responses = [0]

    def hook(_response):
        responses[0] += 1

    # records are built ahead, like the Rust side (serialization stays in the loop)
    records = [gateway_record(0, i) for i in range(20_000)]
    cpu0 = time.process_time()
    t0 = time.monotonic()
    deadline = t0 + a.budget_s
    written = 0
    while time.monotonic() < deadline and written < len(records):
        r = records[written]
        day = time.strftime("%Y-%m-%d", time.gmtime(r["startTime"]))
        container.upload_blob(
            name=f"gateway/{day}/{r['id']}.json",
            data=json.dumps(r),
            overwrite=True,
            raw_response_hook=hook,
        )
        written += 1
    elapsed = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    service.delete_container(container_name)
    print("RESULT " + json.dumps({
        "scenario": "python_sdk",
        "written": written,
        "elapsed_s": elapsed,
        "records_per_s": written / elapsed,
        "requests": responses[0],
        "requests_per_record": responses[0] / max(written, 1),
        "cpu_s": cpu,
        "cpu_us_per_record": cpu * 1e6 / max(written, 1),
        "python": os.sys.version.split()[0],
    }), flush=True)


if __name__ == "__main__":
    main()
