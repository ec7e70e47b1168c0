"""The reference teacher: a small deterministic OpenAI-compatible HTTP server (stdlib only).

Endpoints: GET /v1/models; POST /v1/chat/completions (n, usage, SSE streaming with
stream_options.include_usage); the Batch API's POST /v1/files (multipart upload), GET
/v1/files/{id} and /v1/files/{id}/content, POST /v1/batches, GET /v1/batches/{id}.
What it answers is in teacher.reference.model; fault injection in teacher.reference.faults;
the share and seed of the noisy model's wrong answers in `noise` (teacher.reference.noisy).

`stats.requests` counts chat requests received (batch items included), `stats.completed`
the valid answers delivered -- what a paying client would have been billed for -- and
`stats.by_request` the completed count per distinct request body, so a test can see that
nothing was paid for twice.
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import json
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from teacher.reference.faults import Fault, FaultPlan
from teacher.reference.model import MODELS, respond, user_text
from teacher.reference.noisy import Noise

CREATED = 1_700_000_000  # a fixed timestamp keeps response bodies deterministic


@dataclass
class ServerStats:
    requests: int = 0
    completed: int = 0
    by_request: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, completed_body: dict | None = None) -> None:
        with self.lock:
            if completed_body is None:
                self.requests += 1
            else:
                self.completed += 1
                fingerprint = json.dumps({k: v for k, v in completed_body.items() if k != "stream"}, sort_keys=True)
                self.by_request[hashlib.sha256(fingerprint.encode()).hexdigest()] += 1


@dataclass
class ServerHandle:
    url: str  # ends with /v1
    stats: ServerStats
    httpd: ThreadingHTTPServer
    thread: threading.Thread

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class _State:
    def __init__(self, faults: FaultPlan | None, latency_s: float, noise: Noise | None = None) -> None:
        self.faults, self.latency_s, self.noise = faults or FaultPlan(), latency_s, noise or Noise()
        self.stats = ServerStats()
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.counter = 0

    def new_id(self, prefix: str) -> str:
        with self.lock:
            self.counter += 1
            return f"{prefix}-{self.counter:06d}"


def completion(body: dict, truncate: bool = False, empty: bool = False, noise: Noise | None = None) -> dict:
    """The chat.completion object for a request body."""
    model, n = body.get("model", MODELS[0]), int(body.get("n") or 1)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    out = respond(body.get("messages") or [], model, max_tokens, truncate, noise)
    message = {"role": "assistant", "content": ""} if empty else out["message"]
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]
    return {
        "id": f"chatcmpl-{digest}", "object": "chat.completion", "created": CREATED, "model": model,
        "choices": [{"index": i, "message": message, "finish_reason": out["finish_reason"], "logprobs": None}
                    for i in range(n)],
        "usage": {"prompt_tokens": out["prompt_tokens"], "completion_tokens": out["completion_tokens"] * n,
                  "total_tokens": out["prompt_tokens"] + out["completion_tokens"] * n},
    }  # fmt: skip


def _error(message: str, kind: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms on Linux), which would swamp any latency a test or benchmark sets.
    disable_nagle_algorithm = True
    server_version = "DistilleryReferenceTeacher/1.0"

    def log_message(self, format: str, *args) -> None:  # quiet: tests and benchmarks
        pass

    @property
    def state(self) -> _State:
        return self.server.state  # type: ignore[attr-defined]

    def _send(self, status: int, payload: bytes, content_type="application/json", headers=None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)

    def _json(self, status: int, obj: dict, headers=None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self) -> None:
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts == ["v1", "models"]:
            data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "distillery"} for m in MODELS]
            return self._json(200, {"object": "list", "data": data})
        if parts[:2] == ["v1", "files"] and len(parts) >= 3 and parts[2] in self.state.files:
            f = self.state.files[parts[2]]
            if len(parts) == 4 and parts[3] == "content":
                return self._send(200, f["data"], "application/octet-stream")
            return self._json(200, _file_object(parts[2], f))
        if parts[:2] == ["v1", "batches"] and len(parts) == 3 and parts[2] in self.state.batches:
            return self._json(200, self.state.batches[parts[2]])
        self._json(404, _error(f"no route {self.path}", "invalid_request_error"))

    def do_POST(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        raw = self._body()
        if path == "/v1/chat/completions":
            return self._chat(raw)
        if path == "/v1/files":
            return self._upload(raw)
        if path == "/v1/batches":
            return self._create_batch(raw)
        self._json(404, _error(f"no route {self.path}", "invalid_request_error"))

    def _chat(self, raw: bytes) -> None:
        arrived = time.monotonic()
        state = self.state
        state.stats.count()
        try:
            body = json.loads(raw)
            messages = body["messages"]
        except (ValueError, KeyError, TypeError):
            return self._json(400, _error("body must be JSON with 'messages'", "invalid_request_error"))
        if body.get("model") not in MODELS:
            return self._json(
                404, _error(f"model {body.get('model')!r} not found", "invalid_request_error", "model_not_found")
            )
        fault = state.faults.pick(user_text(messages)[0])
        kind = fault.kind if fault else None
        obj = completion(body, truncate=kind == "truncated", empty=kind == "empty_content", noise=state.noise)
        if state.latency_s:  # counted from arrival: the answer's own work is inside the latency
            time.sleep(max(0.0, state.latency_s - (time.monotonic() - arrived)))
        if fault is not None and self._early_fault(fault):
            return
        if body.get("stream"):
            return self._stream(obj, body)
        payload = json.dumps(obj).encode()
        if kind == "malformed":
            return self._send(200, payload[: len(payload) // 2])
        if kind == "disconnect":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            return self._drop()
        self._send(200, payload)
        state.stats.count(body)

    def _early_fault(self, fault: Fault) -> bool:
        """Faults answered before any completion is made; True if the request is done."""
        if fault.kind == "rate_limit":
            headers = {
                "Retry-After": str(int(-(-fault.seconds // 1))),
                "retry-after-ms": str(int(fault.seconds * 1000)),
            }
            self._json(
                429, _error("Rate limit reached, retry later", "rate_limit_error", "rate_limit_exceeded"), headers
            )
        elif fault.kind == "server_error":
            self._json(fault.status, _error("The server had an error", "server_error"))
        elif fault.kind == "timeout":
            time.sleep(fault.seconds)
            self._drop()
        elif fault.kind == "empty":
            self._send(200, b"")
        elif fault.kind == "echo_auth":
            auth = self.headers.get("Authorization", "")
            self._json(401, _error(f"Incorrect API key provided: {auth}", "invalid_request_error", "invalid_api_key"))
        elif fault.kind == "delay":
            time.sleep(fault.seconds)
            return False
        else:
            return False
        return True

    def _stream(self, obj: dict, body: dict) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        head = {"id": obj["id"], "object": "chat.completion.chunk", "created": CREATED, "model": obj["model"]}

        def event(choices: list, **extra) -> None:
            self.wfile.write(b"data: " + json.dumps({**head, "choices": choices, **extra}).encode() + b"\n\n")

        for choice in obj["choices"]:
            i, message = choice["index"], choice["message"]
            event([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            for field_name in ("reasoning_content", "reasoning", "content"):
                text = message.get(field_name) or ""
                for start in range(0, len(text), 64):
                    event([{"index": i, "delta": {field_name: text[start : start + 64]}, "finish_reason": None}])
            event([{"index": i, "delta": {}, "finish_reason": choice["finish_reason"]}])
        if (body.get("stream_options") or {}).get("include_usage"):
            event([], usage=obj["usage"])
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.state.stats.count(body)

    def _upload(self, raw: bytes) -> None:
        ctype = self.headers.get("Content-Type", "")
        msg = email.parser.BytesParser().parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw)
        fields = {}
        for part in msg.get_payload() if msg.is_multipart() else []:
            name = part.get_param("name", header="content-disposition")
            fields[name] = (part.get_filename(), part.get_payload(decode=True))
        if "file" not in fields:
            return self._json(400, _error("multipart field 'file' is required", "invalid_request_error"))
        file_id = self.state.new_id("file")
        purpose = (fields.get("purpose", (None, b"batch"))[1] or b"").decode()
        self.state.files[file_id] = {
            "data": fields["file"][1],
            "filename": fields["file"][0] or "upload",
            "purpose": purpose,
        }
        self._json(200, _file_object(file_id, self.state.files[file_id]))

    def _create_batch(self, raw: bytes) -> None:
        try:
            req = json.loads(raw)
            source = self.state.files[req["input_file_id"]]
        except (ValueError, KeyError, TypeError):
            return self._json(400, _error("input_file_id must name an uploaded file", "invalid_request_error"))
        batch_id = self.state.new_id("batch")
        batch = {
            "id": batch_id, "object": "batch", "endpoint": req.get("endpoint", "/v1/chat/completions"),
            "errors": None, "input_file_id": req["input_file_id"],
            "completion_window": req.get("completion_window", "24h"), "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": CREATED,
            "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": req.get("metadata"),
        }  # fmt: skip
        self.state.batches[batch_id] = batch
        threading.Thread(target=_run_batch, args=(self.state, batch, source["data"]), daemon=True).start()
        self._json(200, dict(batch))


def _file_object(file_id: str, f: dict) -> dict:
    return {"id": file_id, "object": "file", "bytes": len(f["data"]), "created_at": CREATED,
            "filename": f["filename"], "purpose": f["purpose"], "status": "processed"}  # fmt: skip


def _run_batch(state: _State, batch: dict, data: bytes) -> None:
    """Answer every line of a batch input file; status/error faults become per-item errors."""
    batch["status"] = "in_progress"
    out, errors = [], []
    for n, line in enumerate(data.splitlines()):
        if not line.strip():
            continue
        item = json.loads(line)
        body = item.get("body") or {}
        state.stats.count()
        time.sleep(state.latency_s)  # a batch takes its time too (lets tests catch it running)
        fault = state.faults.pick(user_text(body.get("messages") or [])[0])
        record = {"id": f"batch_req_{batch['id']}_{n}", "custom_id": item.get("custom_id"), "error": None}
        if fault is not None and fault.kind in ("rate_limit", "server_error"):
            code = 429 if fault.kind == "rate_limit" else fault.status
            record["response"] = {"status_code": code, "body": _error("batch item failed", "server_error")}
            errors.append(record)
            continue
        obj = completion(body, truncate=fault is not None and fault.kind == "truncated", noise=state.noise)
        record["response"] = {"status_code": 200, "request_id": obj["id"], "body": obj}
        out.append(record)
        state.stats.count(body)
    for records, key in ((out, "output_file_id"), (errors, "error_file_id")):
        if records:
            file_id = state.new_id("file")
            payload = "".join(json.dumps(r) + "\n" for r in records).encode()
            state.files[file_id] = {
                "data": payload,
                "filename": f"{batch['id']}_{key}.jsonl",
                "purpose": "batch_output",
            }
            batch[key] = file_id
    batch["request_counts"] = {"total": len(out) + len(errors), "completed": len(out), "failed": len(errors)}
    batch["status"] = "completed"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # socketserver's default of 5 resets bursts of new connections

    def handle_error(self, request, client_address) -> None:
        """A client that hung up (its timeout, a test's fault) is not a server error."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def start_server(
    host: str = "127.0.0.1",
    port: int = 0,
    faults: FaultPlan | None = None,
    latency_s: float = 0.0,
    noise: Noise | None = None,
) -> ServerHandle:
    """Serve the reference teacher from a background thread; port 0 picks a free port.
    `noise` sets the noisy model's share of wrong answers and its seed (default Noise())."""
    httpd = _Server((host, port), _Handler)
    httpd.state = _State(faults, latency_s, noise)  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    bound_host, bound_port = httpd.server_address[:2]
    return ServerHandle(f"http://{bound_host}:{bound_port}/v1", httpd.state.stats, httpd, thread)  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    """`distillery teacher serve --host H --port P [--latency-s S] [--noise-share F --noise-seed N]`:
    serve until interrupted."""
    parser = argparse.ArgumentParser(prog="distillery teacher serve", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--latency-s", type=float, default=0.0, help="latency of each chat request, counted from its arrival"
    )
    parser.add_argument(
        "--noise-share", type=float, default=Noise.share, help="share of arithmetic prompts the noisy model gets wrong"
    )
    parser.add_argument("--noise-seed", type=int, default=Noise.seed, help="which prompts the noisy model gets wrong")
    args = list(argv) if argv is not None else None
    if args and args[0] == "serve":
        args = args[1:]
    opts = parser.parse_args(args)
    noise = Noise(opts.noise_share, opts.noise_seed)
    handle = start_server(opts.host, opts.port, latency_s=opts.latency_s, noise=noise)
    print(f"reference teacher serving on {handle.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        handle.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
