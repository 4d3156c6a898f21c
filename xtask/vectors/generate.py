"""Shared Key signing vectors, computed by Microsoft's own Python SDK.

Run through `cargo xtask vectors`, which makes a venv under target/vectors-venv,
installs the pinned packages from requirements.txt and runs this script with the
output directory as its only argument.

What it does
------------
It drives the real SDK clients (azure-storage-blob: BlobServiceClient,
ContainerClient, BlobClient; azure-storage-file-datalake: DataLakeServiceClient,
FileSystemClient, DataLakeDirectoryClient, DataLakeFileClient) through the
operations our Rust client performs, for two accounts: Azurite's well-known
`devstoreaccount1` at a path-style URL and a made-up `adlsvectors` at
virtual-host-style URLs. Each client is given a `RecordingTransport`, an
azure-core `HttpTransport` that records the request handed to it (method, URL,
headers in order, body bytes) and answers with a canned response good enough for
the SDK to parse. The `Authorization` header is the one the SDK's own
`SharedKeyCredentialPolicy` computed; nothing here computes a signature.

It never touches the network: the recording transport opens no socket, and the
URLs (127.0.0.1 and *.core.windows.net) are only strings.

Determinism: `x-ms-date` is set by the SDK's `StorageHeadersPolicy` from
`time()`, which is pinned here (the module attribute is replaced) before any
request is built, so the date is signed like any other. `x-ms-client-request-id`
comes from the public `client_request_id=` keyword of every call, and the
`User-Agent` from the public `user_agent=`/`user_agent_overwrite=` keywords. So no
header is changed after signing. The script checks, for every request, that the
headers and URL the transport received are exactly those the signing policy saw
(a wrapper around `SharedKeyCredentialPolicy.on_request` snapshots them) and, once
the JSON is built, that a fresh `SharedKeyCredentialPolicy` (from both packages)
recomputes each vector's `authorization` from nothing but the vector's own
method, URL and headers.

What the SDK signs (read from azure/storage/blob/_shared/authentication.py of
azure-storage-blob 12.31.1; the copy in azure-storage-file-datalake 12.26.1 is
byte-identical). What surprised us is marked (!).

  string-to-sign = VERB + "\n"
                 + 11 standard header values, each followed by "\n", looked up
                   by lower-cased name: content-encoding, content-language,
                   content-length, content-md5, content-type, date,
                   if-modified-since, if-match, if-none-match,
                   if-unmodified-since, and in the Range slot "byte_range" (!)
                 + canonicalized headers: "name:value\n" per x-ms- header
                 + canonicalized resource: "/" + account + URL path
                 + canonicalized query: "\nname:value" per parameter
  signature      = base64(HMAC-SHA256(base64decode(key), utf8(string-to-sign)))

  * Standard headers: a header whose value is the empty string counts as
    absent (empty slot). Content-Length is signed as the empty string when
    its value is exactly "0". The SDK sends no Content-Length at all on
    bodiless requests (GET, HEAD, DELETE, and PUT/PATCH such as Create
    Container, Set Metadata, DFS create file/directory, Set Access Control),
    so that slot is empty too; only Put Blob with an empty body, Create
    Append Blob and DFS flush send "Content-Length: 0". (A real HTTP client
    adds "Content-Length: 0" to a bodiless PUT; signed per the rule above it
    gives the same empty slot.)
  * (!) Range: the last standard slot looks up a header named "byte_range",
    which no request has, so that slot is always empty. The SDK only ever
    sends `x-ms-range` (signed with the x-ms- headers), so its own requests
    are unaffected; a plain `Range` header would be signed wrongly. No vector
    here carries `Range` or `Date` (the SDK sends `x-ms-date` only).
  * x-ms- headers: every header whose name *as sent* starts with "x-ms-" (a
    case-sensitive test (!); the SDK's own names are lower-case, metadata
    keys keep the caller's case after the prefix, e.g. "x-ms-meta-A_b"),
    name lower-cased, value exactly as sent: not trimmed, inner whitespace
    not folded. (!) An empty value still yields "name:\n": the SDK sends
    `x-ms-source-lease-id:` empty on a DFS rename, and it is signed.
  * (!) x-ms- header order is NOT byte order. `_storage_header_sort` sorts the
    lower-cased names with `compare()`, which emulates the service's
    collation with two 128-entry weight tables indexed by ASCII code
    (`table_lv0`, `table_lv4`; a non-ASCII name raises). A Rust port should
    copy both tables verbatim. Relevant primary (level-0) weights:
        weight 0 (skipped): '-'  "'"  space '"' '(' ')' ',' '/' ':' ';'
                            '<' '=' '>' '?' '@' '[' '\\' ']' '{' '}' and controls
        '!' 0x71c  '#' 0x71f  '$' 0x721  '%' 0x723  '&' 0x725  '*' 0x72d
        '.' 0x733  '^' 0x743  '_' 0x744  '`' 0x748  '|' 0x74c  '~' 0x750
        '+' 0x803
        '0' 0xd03  '1' 0xd1a  '2' 0xd1c ... '9' 0xd2a (ascending)
        'a'/'A' 0xe02  'b'/'B' 0xe09 ... 'z'/'Z' 0xea9 (ascending, case-folded)
    Level 0: walk both names skipping weight-0 characters; the first
    differing weight decides; a name that runs out first (end weighs 1) sorts
    first. So '_' < digits < letters and hyphens do not count:
    "x-ms-meta-a_1" < "x-ms-meta-a0" < "x-ms-meta-a1" < "x-ms-meta-ab",
    whereas byte order puts digits (0x30..) before '_' (0x5f).
    Level 1, only if level 0 ties: walk both names in lock-step from the
    start with `table_lv4` ('-' = 0x8212, "'" = 0x8012, all else 0, end = 1);
    at the first position where exactly one side weighs 0, the *other* side
    (the one holding '-' or "'") sorts last; if both weigh non-zero and
    differ, the smaller weight sorts first. So "x-ms-meta-a1" < "x-ms-meta-a-1"
    and "x-ms-metaa" < "x-ms-meta-a". Python's sort is stable, so full ties
    keep the order in which the headers were added.
    A full example, sorted by the SDK: x-ms-blob-type, x-ms-client-request-id,
    x-ms-date, x-ms-meta-_x, x-ms-meta-a, x-ms-meta-a_1, x-ms-meta-a_b,
    x-ms-meta-a0, x-ms-meta-a1, x-ms-meta-a-1, x-ms-meta-ab, x-ms-meta-a-b,
    x-ms-meta-ab_, x-ms-meta-b, x-ms-meta-x9_y, x-ms-meta-z, x-ms-version.
  * Canonicalized resource: "/" + account name + the URL's path exactly as
    sent, still percent-encoded (`urlparse(url).path`; (!) not decoded, not
    re-encoded). On a path-style URL the account appears twice:
    "/devstoreaccount1/devstoreaccount1/logs/a%20b.json". A service-level
    request on a path-style URL keeps its trailing slash:
    "/devstoreaccount1/devstoreaccount1/".
  * Canonicalized query: (!) azure-core's `HttpRequest.query` splits the raw
    query on "&" and each piece at its first "=" into a dict, so a repeated
    name keeps only its last value, and names are never percent-decoded.
    The (name, value) pairs are sorted by the raw, case-sensitive name
    (Python string order), then each name is lower-cased and each value
    percent-decoded as UTF-8 (`urllib.parse.unquote`; '+' stays '+'), giving
    "\nname:value". A parameter with an empty value (`include=`, sent by
    list containers) or without "=" gives "\nname:". No trailing newline.
    The only upper-case names the SDK sends are DFS `maxResults`,
    `retainUncommittedData`, `action=getAccessControl` (a value), signed as
    "maxresults:" / "retainuncommitteddata:"; they sort as if lower-case
    because no other parameter shares their prefix.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import sys
import urllib.parse
from typing import Any, Callable, Dict, List, Optional, Tuple

from azure.core import MatchConditions
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest
from azure.core.rest._http_response_impl import HttpResponseImpl
from azure.core.utils import case_insensitive_dict

import azure.storage.blob._shared.authentication as blob_auth
import azure.storage.blob._shared.policies as blob_policies
import azure.storage.filedatalake._shared.authentication as dl_auth
import azure.storage.filedatalake._shared.policies as dl_policies
from azure.storage.blob import BlobBlock, BlobServiceClient, ContentSettings
from azure.storage.filedatalake import ContentSettings as PathContentSettings
from azure.storage.filedatalake import DataLakeServiceClient
from azure.storage.filedatalake._deserialize import return_headers_and_deserialized_path_list

# --------------------------------------------------------------------------
# Fixed inputs
# --------------------------------------------------------------------------

API_VERSION = "2025-11-05"  # the newest version Azurite 3.35 accepts
USER_AGENT = "adls-rest-vectors/1"
# Sun, 01 Jun 2025 12:00:00 GMT
FIXED_EPOCH = dt.datetime(2025, 6, 1, 12, 0, 0, tzinfo=dt.timezone.utc).timestamp()
FIXED_DATE = "Sun, 01 Jun 2025 12:00:00 GMT"

AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# 64 random bytes, drawn once; not a real account's key.
VHOST_KEY = "GjGE0troGlm5aRSotFnR4UjjmqVIrgd9SRBELTd3vogXwKL4+8I/P75mmJAm4vzjiYDtvkNgQlaphsDblAttCA=="


class Account:
    def __init__(self, label: str, name: str, key: str, blob_url: str, dfs_url: str):
        self.label = label
        self.name = name
        self.key = key
        self.blob_url = blob_url
        self.dfs_url = dfs_url


PATH_STYLE = Account(
    "path-style",
    "devstoreaccount1",
    AZURITE_KEY,
    "http://127.0.0.1:10000/devstoreaccount1",
    "http://127.0.0.1:10000/devstoreaccount1",
)
VHOST_STYLE = Account(
    "virtual-host",
    "adlsvectors",
    VHOST_KEY,
    "https://adlsvectors.blob.core.windows.net",
    "https://adlsvectors.dfs.core.windows.net",
)

UNICODE_NAME = "données/日本語 file.json"
ODD_NAME = "odd %+=&;,'!()*~ name.json"
ETAG = '"0x8DDA0F1E2D3C4B5"'
SINCE = dt.datetime(2025, 5, 1, 8, 30, 0, tzinfo=dt.timezone.utc)
UNTIL = dt.datetime(2025, 5, 31, 23, 59, 59, tzinfo=dt.timezone.utc)
CONTENT = b"".join(b'{"seq":%d,"msg":"hello world"}\n' % i for i in range(40))  # 1 230 bytes

# --------------------------------------------------------------------------
# Pin the clock the SDK reads for x-ms-date (StorageHeadersPolicy calls the
# module-level `time()` of its own policies module).
# --------------------------------------------------------------------------

for _mod in (blob_policies, dl_policies):
    assert callable(_mod.time), "the SDK no longer imports time() into its policies module"
    _mod.time = lambda: FIXED_EPOCH

# --------------------------------------------------------------------------
# Snapshot what the SDK's signing policy saw
# --------------------------------------------------------------------------

SIGNED: List[Tuple[str, str, List[Tuple[str, str]]]] = []


def _wrap_signer(cls) -> None:
    original = cls.on_request

    def on_request(self, request):
        original(self, request)
        req = request.http_request
        SIGNED.append((req.method, req.url, list(req.headers.items())))

    cls.on_request = on_request


_ORIGINAL_BLOB_SIGN = blob_auth.SharedKeyCredentialPolicy.on_request
_ORIGINAL_DL_SIGN = dl_auth.SharedKeyCredentialPolicy.on_request
_wrap_signer(blob_auth.SharedKeyCredentialPolicy)
if dl_auth.SharedKeyCredentialPolicy is not blob_auth.SharedKeyCredentialPolicy:
    _wrap_signer(dl_auth.SharedKeyCredentialPolicy)

# --------------------------------------------------------------------------
# The transport: records, never connects
# --------------------------------------------------------------------------


class _NoConnection:
    """Stands in for a socket-level response; there is none."""

    def close(self) -> None:
        pass


class _BodyStream:
    """The canned body as the one-chunk iterator the SDK's downloader expects
    (shaped like azure-core's StreamDownloadGenerator)."""

    def __init__(self, response: Any, pipeline: Any, body: bytes) -> None:
        self.response = response
        self.pipeline = pipeline
        self.request = response.request
        self.content_length = int(response.headers.get("Content-Length", 0))
        self._chunks = iter([body] if body else [])

    def __len__(self) -> int:
        return self.content_length

    def __iter__(self) -> "_BodyStream":
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)


def _body_bytes(request: HttpRequest) -> bytes:
    content = request.content
    if content is None:
        return b""
    if isinstance(content, (bytes, bytearray)):
        return bytes(content)
    if isinstance(content, str):
        return content.encode("utf-8")
    if hasattr(content, "read"):
        data = content.read()
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return b"".join(c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in content)


def _query(url: str) -> Dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True))


LIST_BLOBS_XML = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<EnumerationResults ServiceEndpoint="{endpoint}" ContainerName="{container}">'
    "<Blobs /><NextMarker /></EnumerationResults>"
)
LIST_CONTAINERS_XML = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<EnumerationResults ServiceEndpoint="{endpoint}"><Containers /><NextMarker /></EnumerationResults>'
)
BLOCK_LIST_XML = (
    '<?xml version="1.0" encoding="utf-8"?>'
    "<BlockList><CommittedBlocks /><UncommittedBlocks /></BlockList>"
)


class RecordingTransport(HttpTransport):
    """Records every request and answers with a plausible canned response."""

    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []

    def __enter__(self) -> "RecordingTransport":
        return self

    def __exit__(self, *args: Any) -> None:
        pass

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, request: HttpRequest, **kwargs: Any) -> HttpResponseImpl:
        body = _body_bytes(request)
        headers = list(request.headers.items())
        if not SIGNED:
            raise AssertionError(f"request reached the transport unsigned: {request.method} {request.url}")
        signed = SIGNED.pop()
        if SIGNED:
            raise AssertionError("more than one signing pass before one send")
        if signed != (request.method, request.url, headers):
            raise AssertionError(
                "headers changed after signing:\n"
                f"  signed: {signed}\n  sent:   {(request.method, request.url, headers)}"
            )
        self.requests.append({"method": request.method, "url": request.url, "headers": headers, "body": body})
        status, resp_headers, resp_body = respond(request.method, request.url, dict(request.headers))
        resp_headers.setdefault("Content-Length", str(len(resp_body)))

        def stream(pipeline: Any, response: Any, decompress: bool = True, **_: Any):
            return _BodyStream(response, pipeline, resp_body)

        response = HttpResponseImpl(
            request=request,
            internal_response=_NoConnection(),
            status_code=status,
            reason="OK",
            content_type=resp_headers.get("Content-Type"),
            headers=case_insensitive_dict(resp_headers),
            stream_download_generator=stream,
        )
        if not kwargs.get("stream", False):
            response.read()
        return response


def respond(method: str, url: str, headers: Dict[str, str]) -> Tuple[int, Dict[str, str], bytes]:
    """A canned answer shaped like the service's, with the status the SDK expects."""
    h = case_insensitive_dict(headers)
    q = _query(url)
    parts = urllib.parse.urlsplit(url)
    base = {
        "ETag": ETAG,
        "Last-Modified": "Sat, 31 May 2025 10:00:00 GMT",
        "Date": FIXED_DATE,
        "x-ms-request-id": "00000000-0000-0000-0000-000000000000",
        "x-ms-version": API_VERSION,
    }
    endpoint = f"{parts.scheme}://{parts.netloc}/"
    container = parts.path.strip("/").split("/")[-1]
    if method == "GET" and q.get("comp") == "list" and q.get("restype") == "container":
        base["Content-Type"] = "application/xml"
        return 200, base, LIST_BLOBS_XML.format(endpoint=endpoint, container=container).encode()
    if method == "GET" and q.get("comp") == "list":
        base["Content-Type"] = "application/xml"
        return 200, base, LIST_CONTAINERS_XML.format(endpoint=endpoint).encode()
    if method == "GET" and q.get("comp") == "blocklist":
        base["Content-Type"] = "application/xml"
        return 200, base, BLOCK_LIST_XML.encode()
    if method == "GET" and q.get("resource") == "filesystem":
        base["Content-Type"] = "application/json;charset=utf-8"
        return 200, base, b'{"paths":[]}'
    if method in ("GET", "HEAD") and q.get("restype") == "container":
        return 200, base, b""
    if method in ("GET", "HEAD") and "action" in q:
        base.update({"x-ms-owner": "$superuser", "x-ms-group": "$superuser",
                     "x-ms-permissions": "rwxr-x---", "x-ms-acl": "user::rwx,group::r-x,other::---"})
        return 200, base, b""
    if method == "HEAD":
        base.update({"x-ms-blob-type": "BlockBlob", "x-ms-resource-type": "file",
                     "Content-Type": "application/json", "Content-Length": str(len(CONTENT))})
        return 200, base, b""
    if method == "GET":
        total = len(CONTENT)
        base.update({"x-ms-blob-type": "BlockBlob", "Content-Type": "application/json"})
        rng = h.get("x-ms-range") or h.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
            assert m, rng
            start = int(m.group(1))
            end = min(int(m.group(2)) if m.group(2) else total - 1, total - 1)
            data = CONTENT[start : end + 1]
            base["Content-Range"] = f"bytes {start}-{end}/{total}"
            if h.get("x-ms-range-get-content-md5") == "true":
                base["Content-MD5"] = base64.b64encode(hashlib.md5(data).digest()).decode()
            return 206, base, data
        return 200, base, CONTENT
    if method == "DELETE":
        # Blob, container and DFS filesystem deletes answer 202; DFS Delete Path
        # answers 200, and the SDK accepts 202 there too.
        return 202, base, b""
    if method == "PATCH":
        action = q.get("action")
        if action == "append":
            return 202, base, b""
        return 200, base, b""
    if method == "PUT":
        comp = q.get("comp")
        if comp in ("metadata", "properties") or q.get("action") == "setAccessControl":
            return 200, base, b""
        if comp == "appendblock":
            base["x-ms-blob-append-offset"] = "0"
            base["x-ms-blob-committed-block-count"] = "1"
        return 201, base, b""
    raise AssertionError(f"no canned response for {method} {url}")


# --------------------------------------------------------------------------
# Capturing
# --------------------------------------------------------------------------


class Capture:
    def __init__(self, area: str) -> None:
        self.area = area
        self.transport = RecordingTransport()
        self.vectors: List[Dict[str, Any]] = []

    def opts(self) -> Dict[str, Any]:
        """Per-call keywords that pin the only non-deterministic headers."""
        return {
            "client_request_id": self._request_id(len(self.vectors)),
            "user_agent": USER_AGENT,
            "user_agent_overwrite": True,
        }

    def _request_id(self, n: int) -> str:
        tag = {"blob": 0xB10B, "dfs": 0xDF5}[self.area]
        return f"00000000-0000-4000-8000-{tag:06x}{n:06d}"

    def run(self, account: Account, name: str, call: Callable[[Dict[str, Any]], Any]) -> None:
        self.transport.requests.clear()
        expected_id = self._request_id(len(self.vectors))
        call(self.opts())
        reqs = list(self.transport.requests)
        if not reqs:
            raise AssertionError(f"{name}: the SDK sent no request")
        for i, req in enumerate(reqs):
            label = f"{account.label} {name}"
            if len(reqs) > 1:
                label += f" (request {i + 1} of {len(reqs)})"
            self.vectors.append(to_vector(account, label, req, expected_id))


def to_vector(account: Account, name: str, req: Dict[str, Any], expected_id: str) -> Dict[str, Any]:
    headers = [(k, v) for k, v in req["headers"] if k.lower() != "authorization"]
    auth = [v for k, v in req["headers"] if k.lower() == "authorization"]
    if len(auth) != 1:
        raise AssertionError(f"{name}: expected one Authorization header, got {auth}")
    lower = [k.lower() for k, _ in headers]
    if len(set(lower)) != len(lower):
        raise AssertionError(f"{name}: duplicate header names {lower}")
    hd = case_insensitive_dict(headers)
    if hd.get("x-ms-date") != FIXED_DATE:
        raise AssertionError(f"{name}: x-ms-date {hd.get('x-ms-date')!r} is not pinned")
    if hd.get("x-ms-client-request-id") != expected_id:
        raise AssertionError(f"{name}: x-ms-client-request-id {hd.get('x-ms-client-request-id')!r}")
    if hd.get("x-ms-version") != API_VERSION:
        raise AssertionError(f"{name}: x-ms-version {hd.get('x-ms-version')!r}")
    if hd.get("User-Agent") != USER_AGENT:
        raise AssertionError(f"{name}: User-Agent {hd.get('User-Agent')!r}")
    if "Content-Length" in hd and int(hd["Content-Length"]) != len(req["body"]):
        raise AssertionError(f"{name}: Content-Length {hd['Content-Length']} for {len(req['body'])} body bytes")
    if "Range" in hd or "Date" in hd:
        raise AssertionError(f"{name}: carries Range or Date (the SDK signs Range wrongly, see the notes above)")
    if not auth[0].startswith(f"SharedKey {account.name}:"):
        raise AssertionError(f"{name}: {auth[0]}")
    return {
        "name": name,
        "account": account.name,
        "key": account.key,
        "method": req["method"],
        "url": req["url"],
        "headers": [list(h) for h in headers],
        "body_base64": base64.b64encode(req["body"]).decode("ascii"),
        "authorization": auth[0],
    }


def resign(vector: Dict[str, Any], policy_cls: Any, original_on_request: Any) -> str:
    """The SDK's signing policy, run afresh on nothing but the vector's fields."""
    request = HttpRequest(vector["method"], vector["url"], headers=[tuple(h) for h in vector["headers"]])
    if list(request.headers.items()) != [tuple(h) for h in vector["headers"]]:
        raise AssertionError(f"{vector['name']}: HttpRequest altered the headers")
    policy = policy_cls(vector["account"], vector["key"])
    original_on_request(policy, PipelineRequest(request, PipelineContext(None)))
    return request.headers["Authorization"]


# --------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------


def client_kwargs(account: Account, transport: RecordingTransport) -> Dict[str, Any]:
    return {
        "credential": {"account_name": account.name, "account_key": account.key},
        "transport": transport,
        "api_version": API_VERSION,
        # One request per operation: no chunking, no parallel ranges, no retries.
        "max_single_put_size": 64 * 1024 * 1024,
        "max_single_get_size": 32 * 1024 * 1024,
        "retry_total": 0,
    }


# --------------------------------------------------------------------------
# Blob cases
# --------------------------------------------------------------------------

MIXED_METADATA = {"a_1": "one", "a1": "two", "A_b": "three", "ab_": "four", "_x": "five", "x9_y": "six"}


def blob_cases(cap: Capture, acct: Account) -> None:
    svc = BlobServiceClient(acct.blob_url, **client_kwargs(acct, cap.transport))
    logs = svc.get_container_client("logs")
    blob = logs.get_blob_client("2025/06/01/part-00000.jsonl")
    spaced = logs.get_blob_client("a b.json")
    uni = logs.get_blob_client(UNICODE_NAME)
    odd = logs.get_blob_client(ODD_NAME)
    app = logs.get_blob_client("append/events.log")
    r = cap.run

    # Containers.
    r(acct, "Create Container", lambda o: logs.create_container(**o))
    r(acct, "Create Container with metadata",
      lambda o: svc.get_container_client("meta-container").create_container(
          metadata={"owner": "team_7", "purpose": "llm-logs"}, **o))
    r(acct, "Get Container Properties", lambda o: logs.get_container_properties(**o))
    r(acct, "Set Container Metadata", lambda o: logs.set_container_metadata({"retention": "30d"}, **o))
    r(acct, "Delete Container", lambda o: svc.get_container_client("old-logs").delete_container(**o))
    r(acct, "List Containers with prefix and maxresults",
      lambda o: next(svc.list_containers(name_starts_with="lo", results_per_page=5, **o).by_page()))

    # Put Blob.
    r(acct, "Put Blob small JSON body", lambda o: blob.upload_blob(CONTENT[:31], overwrite=True, **o))
    r(acct, "Put Blob empty body (Content-Length 0) with If-None-Match *",
      lambda o: blob.upload_blob(b"", overwrite=False, **o))
    r(acct, "Put Blob name with a space, Content-MD5",
      lambda o: spaced.upload_blob(b'{"a": "b"}', overwrite=True, validate_content=True, **o))
    r(acct, "Put Blob unicode name", lambda o: uni.upload_blob("日本語のテキスト\n".encode(), overwrite=True, **o))
    r(acct, "Put Blob name with % + = & ; , ' ! ( ) * ~",
      lambda o: odd.upload_blob(b"odd", overwrite=True, **o))
    r(acct, "Put Blob with content settings",
      lambda o: blob.upload_blob(
          CONTENT[:64], overwrite=True,
          content_settings=ContentSettings(
              content_type="application/x-ndjson", content_encoding="identity", content_language="en-US",
              cache_control="no-cache", content_disposition='attachment; filename="part.jsonl"'),
          **o))
    r(acct, "Put Blob with mixed metadata names (_ vs digit ordering)",
      lambda o: blob.upload_blob(b"m", overwrite=True, metadata=MIXED_METADATA, **o))
    r(acct, "Put Blob with standard Content-Encoding and Content-Language headers",
      lambda o: blob.upload_blob(
          b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00",
          overwrite=True, headers={"Content-Encoding": "gzip", "Content-Language": "de-DE"}, **o))
    r(acct, "Put Blob with If-Match and If-Unmodified-Since",
      lambda o: blob.upload_blob(b"replace", overwrite=True, etag=ETAG,
                                 match_condition=MatchConditions.IfNotModified, if_unmodified_since=UNTIL, **o))

    # Put Block / Put Block List.
    r(acct, "Put Block with transactional MD5",
      lambda o: blob.stage_block("000000000000", CONTENT[:100], validate_content=True, **o))
    r(acct, "Put Block second block id", lambda o: blob.stage_block("000000000100", CONTENT[100:300], **o))
    r(acct, "Put Block on unicode name", lambda o: uni.stage_block("00000000", b"block", **o))
    r(acct, "Put Block on name with reserved characters", lambda o: odd.stage_block("blk+/=?", b"x", **o))
    r(acct, "Put Block List with content settings and metadata",
      lambda o: blob.commit_block_list(
          [BlobBlock("000000000000"), BlobBlock("000000000100")],
          content_settings=ContentSettings(content_type="application/x-ndjson", cache_control="max-age=60"),
          metadata={"rows": "2", "source_app": "litellm"}, **o))
    r(acct, "Put Block List with If-Match",
      lambda o: spaced.commit_block_list([BlobBlock("MDA=")], etag=ETAG,
                                         match_condition=MatchConditions.IfNotModified, **o))
    r(acct, "Put Block List with If-None-Match * and transactional MD5",
      lambda o: uni.commit_block_list([BlobBlock("00000000")], etag="*",
                                      match_condition=MatchConditions.IfMissing, validate_content=True, **o))
    r(acct, "Get Block List", lambda o: blob.get_block_list("all", **o))

    # Append blobs.
    r(acct, "Create Append Blob (Content-Length 0)",
      lambda o: app.create_append_blob(content_settings=ContentSettings(content_type="text/plain"), **o))
    r(acct, "Append Block with Content-MD5 and append position",
      lambda o: app.append_block(b"line 1\n", validate_content=True, appendpos_condition=0, **o))
    r(acct, "Append Block with max size condition",
      lambda o: app.append_block(b"line 2\n", appendpos_condition=7, maxsize_condition=4194304, **o))

    # Reads.
    r(acct, "Get Blob whole (x-ms-range first chunk)", lambda o: blob.download_blob(**o).readall())
    r(acct, "Get Blob range", lambda o: blob.download_blob(offset=100, length=50, **o).readall())
    r(acct, "Get Blob range with transactional MD5",
      lambda o: blob.download_blob(offset=0, length=512, validate_content=True, **o).readall())
    r(acct, "Get Blob with If-Modified-Since",
      lambda o: odd.download_blob(offset=1, length=2, if_modified_since=SINCE, **o).readall())
    r(acct, "Get Blob Properties", lambda o: spaced.get_blob_properties(**o))
    r(acct, "Get Blob Properties with If-Match",
      lambda o: uni.get_blob_properties(etag=ETAG, match_condition=MatchConditions.IfNotModified, **o))

    # Metadata and properties.
    r(acct, "Set Blob Metadata mixed names",
      lambda o: blob.set_blob_metadata(
          {"a_1": "x", "a1": "y", "A_b": "z", "ab_": "w", "_x": "v", "x9_y": "u", "z": "t", "Zz_9": "s"}, **o))
    r(acct, "Set Blob Metadata a_1 and a1 only", lambda o: spaced.set_blob_metadata({"a1": "2", "a_1": "1"}, **o))
    # Hyphens in metadata names are not C# identifiers, so the real service
    # refuses them; the SDK sends them anyway. Kept for the level-1 tie-break
    # of the SDK's header collation ("a1" < "a-1", "ab" < "a-b").
    r(acct, "Set Blob Metadata with hyphenated names (ordering only; the real service rejects them)",
      lambda o: app.set_blob_metadata({"a-1": "h1", "a1": "d1", "a_1": "u1", "a-b": "hb", "ab": "ab",
                                       "a0": "d0", "b": "b"}, **o))
    r(acct, "Set Blob Metadata with If-Modified-Since",
      lambda o: odd.set_blob_metadata({"k": "v"}, if_modified_since=SINCE, **o))
    r(acct, "Set Blob HTTP Headers",
      lambda o: blob.set_http_headers(ContentSettings(
          content_type="application/json", content_encoding="utf-8", content_language="fr",
          cache_control="public, max-age=3600"), **o))

    # Listing.
    r(acct, "List Blobs with prefix, include and maxresults",
      lambda o: next(logs.list_blobs(name_starts_with="2025/06/", include=["metadata"],
                                     results_per_page=100, **o).by_page()))
    r(acct, "List Blobs continuation marker",
      lambda o: next(logs.list_blobs(name_starts_with="2025/", results_per_page=2, **o)
                     .by_page(continuation_token="2!88!MDAwMDIxITIwMjUvMDYvMDEvcGFydC0wMDAwMS5qc29ubCEwMDAwMjgh")))
    r(acct, "List Blobs with delimiter and unicode prefix",
      lambda o: next(logs.walk_blobs(name_starts_with="données/日", delimiter="/", **o).by_page()))
    r(acct, "List Blobs prefix with reserved characters",
      lambda o: next(logs.list_blobs(name_starts_with="odd %+=&;,", **o).by_page()))

    # Deletes.
    r(acct, "Delete Blob", lambda o: spaced.delete_blob(**o))
    r(acct, "Delete Blob with snapshots and If-Match",
      lambda o: blob.delete_blob(delete_snapshots="include", etag=ETAG,
                                 match_condition=MatchConditions.IfNotModified, **o))
    r(acct, "Delete Blob unicode name", lambda o: uni.delete_blob(**o))


# --------------------------------------------------------------------------
# DFS cases
# --------------------------------------------------------------------------


def list_paths(fs: Any, opts: Dict[str, Any], *, recursive: bool, path: str,
               max_results: Optional[int] = None, continuation: Optional[str] = None,
               upn: Optional[bool] = None) -> Any:
    """One page of `FileSystemClient.get_paths`, made the way the SDK makes it.

    `get_paths` hands its keywords to the pager class too, which rejects
    `client_request_id`; so this calls the same generated operation with the
    same arguments as `get_paths` + `PathPropertiesPaged._get_next_cb` do.
    """
    return fs._client.file_system.list_paths(  # pylint: disable=protected-access
        recursive, continuation=continuation, path=path, max_results=max_results, upn=upn,
        timeout=None, begin_from=None, cls=return_headers_and_deserialized_path_list, **opts)


def rename(fs: Any, source: Any, new_path: str, opts: Dict[str, Any]) -> Any:
    """`DataLakeFileClient.rename_file` within one file system.

    `rename_file` builds its destination client without passing `api_version`
    on, so its request would carry the SDK's newest x-ms-version instead of
    ours; this makes the destination client with our version and then does
    what `rename_file` does (same source string, same private call).
    """
    dest = fs.get_file_client(new_path)
    src = f"/{urllib.parse.quote(urllib.parse.unquote(source.file_system_name))}/" \
          f"{urllib.parse.quote(urllib.parse.unquote(source.path_name))}"
    return dest._rename_path(src, **opts)  # pylint: disable=protected-access


def dfs_cases(cap: Capture, acct: Account) -> None:
    svc = DataLakeServiceClient(acct.dfs_url, **client_kwargs(acct, cap.transport))
    fs = svc.get_file_system_client("logs")
    d = fs.get_directory_client("2025/06/01")
    f = fs.get_file_client("2025/06/01/part-00000.jsonl")
    uni = fs.get_file_client(UNICODE_NAME)
    odd = fs.get_file_client(ODD_NAME)
    r = cap.run

    # File systems: the SDK creates/deletes them on the Blob endpoint; its generated
    # DFS operations (`?resource=filesystem`) are what a DFS-only client sends.
    r(acct, "DataLake create_file_system (Blob endpoint)", lambda o: fs.create_file_system(**o))
    r(acct, "DFS Create Filesystem (resource=filesystem)",
      lambda o: fs._client.file_system.create(**o))  # pylint: disable=protected-access
    r(acct, "DFS Delete Filesystem (resource=filesystem)",
      lambda o: svc.get_file_system_client("old-logs")._client.file_system.delete(**o))
    r(acct, "DataLake list_file_systems (Blob endpoint)",
      lambda o: next(svc.list_file_systems(name_starts_with="lo", **o).by_page()))

    # Directories and files.
    r(acct, "DFS Create Directory", lambda o: d.create_directory(**o))
    r(acct, "DFS Create Directory with metadata, permissions and umask",
      lambda o: fs.get_directory_client("données").create_directory(
          metadata={"a_1": "x", "a1": "y"}, permissions="rwxr-x---", umask="0027", **o))
    r(acct, "DFS Create File", lambda o: f.create_file(**o))
    r(acct, "DFS Create File with If-None-Match *",
      lambda o: f.create_file(etag="*", match_condition=MatchConditions.IfMissing, **o))
    r(acct, "DFS Create File unicode name with content settings",
      lambda o: uni.create_file(content_settings=PathContentSettings(
          content_type="application/json", content_language="ja", cache_control="no-store"), **o))
    r(acct, "DFS Create File name with % + = & ; , ' ! ( ) * ~", lambda o: odd.create_file(**o))

    # Append and flush.
    r(acct, "DFS Append at 0", lambda o: f.append_data(CONTENT[:200], offset=0, length=200, **o))
    r(acct, "DFS Append at 200 with Content-MD5",
      lambda o: f.append_data(CONTENT[200:500], offset=200, length=300, validate_content=True, **o))
    r(acct, "DFS Append to unicode name", lambda o: uni.append_data(b"{}\n", offset=0, length=3, **o))
    r(acct, "DFS Append to name with reserved characters",
      lambda o: odd.append_data(b"odd", offset=0, length=3, **o))
    r(acct, "DFS Flush close=false", lambda o: f.flush_data(500, **o))
    r(acct, "DFS Flush close=true with content settings",
      lambda o: f.flush_data(500, close=True, retain_uncommitted_data=False,
                             content_settings=PathContentSettings(content_type="application/x-ndjson",
                                                                  content_encoding="identity"), **o))
    r(acct, "DFS Flush with If-Match",
      lambda o: uni.flush_data(3, close=True, etag=ETAG, match_condition=MatchConditions.IfNotModified, **o))
    r(acct, "DFS Flush with If-Unmodified-Since",
      lambda o: odd.flush_data(3, if_unmodified_since=UNTIL, **o))

    # Reads (the SDK reads through the Blob endpoint).
    r(acct, "DataLake download_file whole (Blob endpoint)", lambda o: f.download_file(**o).readall())
    r(acct, "DataLake download_file range (Blob endpoint)",
      lambda o: uni.download_file(offset=10, length=20, **o).readall())
    r(acct, "DataLake get_file_properties (Blob endpoint)", lambda o: f.get_file_properties(**o))
    r(acct, "DFS Get Access Control", lambda o: f.get_access_control(upn=True, **o))
    r(acct, "DFS Set Access Control", lambda o: odd.set_access_control(permissions="rw-r-----", **o))
    r(acct, "DataLake set_metadata mixed names (Blob endpoint)",
      lambda o: f.set_metadata({"_x": "1", "x9_y": "2", "a_1": "3", "a1": "4", "ab_": "5", "A_b": "6"}, **o))

    # Listing.
    r(acct, "DFS List Paths recursive with directory and maxResults",
      lambda o: list_paths(fs, o, recursive=True, path="2025/06", max_results=50))
    r(acct, "DFS List Paths non-recursive with continuation",
      lambda o: list_paths(fs, o, recursive=False, path="2025", max_results=2,
                           continuation="VBbT+5KjjsfL8vYBGLYBL2FkbHN2ZWN0b3JzATAxREI="))
    r(acct, "DFS List Paths unicode directory with upn",
      lambda o: list_paths(fs, o, recursive=False, path="données", upn=True))

    # Rename and delete.
    r(acct, "DFS Rename File", lambda o: rename(fs, f, "2025/06/01/part-00000.done.jsonl", o))
    r(acct, "DFS Rename File with unicode source", lambda o: rename(fs, uni, "données/renamed 日本語.json", o))
    r(acct, "DFS Delete File", lambda o: odd.delete_file(**o))
    r(acct, "DFS Delete Directory (recursive)", lambda o: d.delete_directory(**o))
    r(acct, "DFS Delete File with If-Match",
      lambda o: uni.delete_file(etag=ETAG, match_condition=MatchConditions.IfNotModified, **o))


# --------------------------------------------------------------------------


def render(vectors: List[Dict[str, Any]]) -> str:
    """JSON with one line per field and per header pair, for readable diffs."""

    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    items = []
    for v in vectors:
        headers = ",\n".join(f"      {dump(h)}" for h in v["headers"])
        fields = [f"    {dump(k)}: {dump(v[k])}" for k in ("name", "account", "key", "method", "url")]
        fields.append(f'    "headers": [\n{headers}\n    ]')
        fields += [f"    {dump(k)}: {dump(v[k])}" for k in ("body_base64", "authorization")]
        items.append("  {\n" + ",\n".join(fields) + "\n  }")
    return "[\n" + ",\n".join(items) + "\n]\n"


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: generate.py OUT_DIR", file=sys.stderr)
        return 2
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    outputs = {}
    for area, cases in (("blob", blob_cases), ("dfs", dfs_cases)):
        cap = Capture(area)
        for acct in (PATH_STYLE, VHOST_STYLE):
            cases(cap, acct)
        for v in cap.vectors:
            for cls, original in ((blob_auth.SharedKeyCredentialPolicy, _ORIGINAL_BLOB_SIGN),
                                  (dl_auth.SharedKeyCredentialPolicy, _ORIGINAL_DL_SIGN)):
                again = resign(v, cls, original)
                if again != v["authorization"]:
                    raise AssertionError(f"{v['name']}: re-signing gave {again}, recorded {v['authorization']}")
        names = [v["name"] for v in cap.vectors]
        if len(set(names)) != len(names):
            raise AssertionError(f"{area}: duplicate vector names")
        outputs[area] = cap.vectors
    for area, vectors in outputs.items():
        path = os.path.join(out_dir, f"{area}.json")
        text = render(vectors)
        if json.loads(text) != vectors:
            raise AssertionError("render() changed the data")
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        print(f"wrote {len(vectors)} vectors to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
