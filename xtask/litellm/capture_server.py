"""A throwaway HTTP endpoint for `cargo xtask litellm --self-check`: records
every POST and answers it, standard library only.

    capture_server.py --log FILE [--port 0] [--port-file FILE] [--fail-first N] [--token T]

Listens on 127.0.0.1 (`--port 0`: a free port, written to `--port-file` once
listening). Each POST is answered, then appended to `--log` as one JSON line:
{"n", "path", "status", "headers" (all, as sent), "body" (text; base64 in
"body_base64" if not UTF-8), "received" (epoch seconds)}. Answers: 401 if
`--token` is set and `Authorization: Bearer <token>` is missing or wrong; 503
with `Retry-After: 1` for the first `--fail-first` POSTs (counting only those
with a valid token); 200 `{"ok":true}` otherwise. Runs until SIGTERM/SIGINT.
HTTP/1.1 with keep-alive, as LiteLLM's httpx client uses it.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--log", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--token")
    return p.parse_args()


ARGS = parse_args()
LOCK = threading.Lock()
STATE = {"n": 0, "authorized": 0}
LOG = open(ARGS.log, "a", encoding="utf-8")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        authorized = not ARGS.token or hmac.compare_digest(
            self.headers.get("Authorization", "").encode(), f"Bearer {ARGS.token}".encode()
        )
        with LOCK:
            STATE["n"] += 1
            n = STATE["n"]
            if authorized:
                STATE["authorized"] += 1
            status = 401 if not authorized else 503 if STATE["authorized"] <= ARGS.fail_first else 200
            entry = {"n": n, "path": self.path, "status": status, "headers": dict(self.headers.items())}
            try:
                entry["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                entry["body_base64"] = base64.b64encode(body).decode("ascii")
            entry["received"] = time.time()
            # Logged before the answer is sent: once the client has its answer,
            # the line is in the file.
            LOG.write(json.dumps(entry) + "\n")
            LOG.flush()
        answer = b'{"ok":true}' if status == 200 else json.dumps({"error": status}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        if status == 503:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args) -> None:  # quiet: the log file has it all
        pass


def main() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    if ARGS.port_file:
        with open(ARGS.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        import os

        os.replace(ARGS.port_file + ".tmp", ARGS.port_file)
    print(f"capture_server: listening on http://127.0.0.1:{port}", file=sys.stderr, flush=True)

    def stop(_signum, _frame) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()
    LOG.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
