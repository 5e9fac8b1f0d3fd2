"""A local OpenAI-compatible server: Chat Completions with strict-schema answers, Files and Batches.

It answers the labeling contract deterministically (``describe``), bills tokens counted with o200k_base, and
injects faults on demand. Use it in-process (``FakeOpenAI().start()``) or standalone:

    python -m tests.fake_openai.server --port 8765 --latency 1.0 --rpm 600 --tpm 200000

Control endpoints (no API key needed): ``GET /_stats`` (what was billed), ``POST /_faults`` (a JSON list of
faults, consumed one per chat request, in order), ``POST /_batch_faults`` (an object), ``POST /_reset``.

Faults (``{"kind": ...}``):
  status           {"status": 429|500|401|..., "code": str, "retry_after_ms": int, "retry_after": str}
  timeout          {"seconds": float}  answer only after this extra delay (the client should have given up)
  malformed        invalid JSON content (billed)
  truncated        content cut in the middle, finish_reason "length" (billed)
  drop             {"ids": [...]} or {"count": n}: leave ids out
  duplicate        {"conflicting": bool}: answer the first id twice
  unknown          add an answer for an id that was never asked
  shuffle          answer in reverse order
  invalid          {"ids": [...] | "count": n, "value": str}: multi-line (or given) descriptions
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import functools
import itertools
import json
import re
import select
import socket
import threading
import time
import uuid
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

NO_OBJECT = "_no_object"
DEFAULT_MODELS = ("gpt-6-luna", "gpt-5.6-luna", "gpt-4o-mini")
_STYLE = re.compile(
    r"\b(\d+\s?k|hd|uhd|hdr|detailed|ultra|highly|intricate|sharp focus|high resolution|resolution|"
    r"trending on artstation|artstation|unreal engine|octane render|render|3d rendering|cinematic|"
    r"lighting|lightning|photorealistic|hyperrealistic|realistic|digital art|digital painting|concept art|"
    r"illustration|masterpiece|best quality|award winning|by [a-z]+ [a-z]+|art by .*|\d+\s?mm( film)?|photo|"
    r"film|bokeh|volumetric|studio ghibli style|style)\b"
)
_LEAD = re.compile(r"^(a |an )?(photorealistic |realistic |beautiful )?(image|photo|picture|painting|render) of ")
_NO_OBJECT_PHRASES = {"surprise me", "com", "anything", "random", "something"}


def describe(prompt: str) -> str:
    """The fake model's answer: the first segment that is not only style words, or _no_object."""
    text = " ".join(prompt.lower().split())
    if text in _NO_OBJECT_PHRASES:
        return NO_OBJECT
    words = re.findall(r"[a-z0-9]+", text)
    if not words or sum(1 for w in words if not re.search(r"[aeiouy]", w)) * 2 >= len(words):
        return NO_OBJECT
    for segment in text.split(","):
        stripped = _STYLE.sub(" ", segment)
        stripped = " ".join(stripped.replace("-", " ").split())
        stripped = _LEAD.sub("", stripped).strip(" .")
        if re.search(r"[a-z]{3,}", stripped):
            return stripped[:120]
    return NO_OBJECT


@functools.lru_cache(maxsize=1)
def _encoding():
    import bpe_openai

    return bpe_openai.get_encoding("o200k_base")


def count_tokens(text: str) -> int:
    return len(_encoding().encode(text))


def chat_prompt_tokens(messages: list[dict]) -> int:
    # The same framing the real API uses: 3 tokens per message, 3 to prime the reply.
    return 3 + sum(3 + count_tokens(str(m.get("content") or "")) for m in messages)


class TokenBucket:
    """Requests/tokens per minute, refilled continuously, holding ``burst_s`` seconds of refill (OpenAI's hold a
    minute; one second makes a tight server)."""

    def __init__(self, per_minute: float | None, burst_s: float = 1.0) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0 if per_minute else None
        self.capacity = max((self.rate or 0.0) * burst_s, 1.0)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def headers(self, kind: str, now: float) -> dict[str, str]:
        """OpenAI's x-ratelimit-* headers for this bucket: the limit per minute, what remains, the time until
        full."""
        if self.rate is None:
            return {}
        level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        return {f"x-ratelimit-limit-{kind}": str(int(self.per_minute)),
                f"x-ratelimit-remaining-{kind}": str(max(0, int(level))),
                f"x-ratelimit-reset-{kind}": f"{(self.capacity - level) / self.rate:.3f}s"}

    def wait_for(self, amount: float, now: float) -> float:
        """0 if ``amount`` fits now (and take it), else seconds until it would."""
        if self.rate is None:
            return 0.0
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        need = min(amount, self.capacity)
        if self.level >= need:
            self.level -= need
            return 0.0
        return (need - self.level) / self.rate


class FakeOpenAI:
    def __init__(
        self,
        *,
        api_key: str | None = "sk-test",  # None: no key needed, as most local servers
        strict_schema: bool = True,  # False: rejects a json_schema response_format, answers JSON mode
        reasoning_effort: bool = True,  # False: rejects requests that carry reasoning_effort
        latency: float = 0.0,
        rpm: float | None = None,
        tpm: float | None = None,
        burst_s: float = 1.0,
        rate_limit_headers: bool = True,
        models: tuple[str, ...] = DEFAULT_MODELS,
        batch_delay: float = 0.05,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.strict_schema = strict_schema
        self.reasoning_effort = reasoning_effort
        self.latency = latency
        self.models = models
        self.batch_delay = batch_delay
        self.lock = threading.Lock()
        self.faults: deque[dict] = deque()
        self.batch_faults: dict[str, Any] = {}
        self.requests_bucket = TokenBucket(rpm, burst_s)
        self.tokens_bucket = TokenBucket(tpm, burst_s)
        self.rate_limit_headers = rate_limit_headers
        self.rpm, self.tpm = rpm, tpm
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self.reset_stats()
        self.httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # lifecycle -----------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeOpenAI:
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # control -------------------------------------------------------------------------------------------
    def reset_stats(self) -> None:
        with self.lock:
            self.stats: dict[str, Any] = {
                "chat_requests": 0,
                "billed_requests": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "reasoning_tokens": 0,
                "batch_prompt_tokens": 0,
                "batch_completion_tokens": 0,
                "rate_limited": 0,
                "injected": 0,
                "abandoned": 0,
                "batch_list_pages": 0,
                "admitted_requests": 0,
                "admitted_tokens": 0,
                "first_admit": None,
                "last_admit": None,
                "billed": [],
            }
            self.prompt_bills: Counter[str] = Counter()

    def add_faults(self, *faults: dict) -> None:
        with self.lock:
            self.faults.extend(faults)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            data = dict(self.stats)
            data["billed"] = list(self.stats["billed"])
            data["prompt_bills"] = dict(self.prompt_bills)
            data["pending_faults"] = len(self.faults)
            data["rpm"], data["tpm"] = self.rpm, self.tpm
            return data

    def next_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}{uuid.uuid4().hex[:8]}"

    # chat ----------------------------------------------------------------------------------------------
    def answer(self, body: dict, *, fault: dict | None, batch: bool) -> tuple[int, dict, dict, list[str], dict]:
        """(status, headers, json body, prompts, usage) for one chat completion; does not bill."""
        model = body.get("model")
        if model not in self.models:
            return 404, {}, _error(f"The model `{model}` does not exist", "model_not_found"), [], {}
        try:
            items = json.loads(body["messages"][-1]["content"])
            ids = [int(item["id"]) for item in items]
            texts = [str(item["prompt"]) for item in items]
        except (KeyError, IndexError, TypeError, ValueError):
            return 400, {}, _error("last user message is not a JSON array of {id, prompt}", "invalid_items"), [], {}
        fmt = body.get("response_format") or {}
        if "reasoning_effort" in body and not self.reasoning_effort:
            return 400, {}, _error("Unrecognized request argument supplied: reasoning_effort", "invalid_request"), [], {}
        if not self.strict_schema:
            if fmt.get("type") != "json_object":
                return 400, {}, _error(f"response_format type {fmt.get('type')!r} is not supported; use json_object",
                                       "invalid_response_format"), [], {}
        elif fmt.get("type") != "json_schema" or not fmt.get("json_schema", {}).get("strict"):
            return 400, {}, _error("response_format must be a strict json_schema", "invalid_response_format"), [], {}

        labels = [{"id": i, "description": describe(t)} for i, t in zip(ids, texts, strict=True)]
        finish = "stop"
        kind = (fault or {}).get("kind")
        if kind == "drop":
            drop = set(fault.get("ids") or ids[: fault.get("count", 1)])
            labels = [x for x in labels if x["id"] not in drop]
        elif kind == "duplicate" and labels:
            copy = dict(labels[0])
            if fault.get("conflicting", True):
                copy["description"] = "something else entirely"
            labels.append(copy)
        elif kind == "unknown":
            labels.append({"id": max(ids, default=0) + 1000, "description": "a stray answer"})
        elif kind == "shuffle":
            labels.reverse()
        elif kind == "invalid":
            bad = set(fault.get("ids") or ids[: fault.get("count", 1)])
            for x in labels:
                if x["id"] in bad:
                    x["description"] = fault.get("value", "first line\nsecond line")
        content = json.dumps({"labels": labels}, ensure_ascii=False, separators=(",", ":"))
        if kind == "malformed":
            content = content[: max(len(content) // 2, 5)].replace('"', "'")
        elif kind == "no_labels":
            content = json.dumps({"items": labels})
        elif kind == "truncated":
            content = content[: max(len(content) // 2, 5)]
            finish = "length"

        reasoning = 0 if body.get("reasoning_effort") in ("none", None) else 64
        completion_tokens = count_tokens(content) + reasoning
        usage = {
            "prompt_tokens": chat_prompt_tokens(body["messages"]),
            "completion_tokens": completion_tokens,
            "total_tokens": 0,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }
        usage["total_tokens"] = usage["prompt_tokens"] + completion_tokens
        request_id = self.next_id("req")
        completion = {
            "id": self.next_id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "service_tier": body.get("service_tier") or "default",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "finish_reason": finish,
                    "logprobs": None,
                }
            ],
            "usage": usage,
        }
        return 200, {"x-request-id": request_id}, completion, texts, usage

    def bill(self, request_id: str, usage: dict, prompts: list[str], *, batch: bool) -> None:
        with self.lock:
            self.stats["billed_requests"] += 1
            key = "batch_" if batch else ""
            self.stats[key + "prompt_tokens"] += usage["prompt_tokens"]
            self.stats[key + "completion_tokens"] += usage["completion_tokens"]
            self.stats["reasoning_tokens"] += usage["completion_tokens_details"]["reasoning_tokens"]
            self.stats["billed"].append(
                {
                    "request_id": request_id,
                    "prompt_tokens": usage["prompt_tokens"],
                    "completion_tokens": usage["completion_tokens"],
                    "reasoning_tokens": usage["completion_tokens_details"]["reasoning_tokens"],
                    "items": len(prompts),
                    "batch": batch,
                }
            )
            self.prompt_bills.update(prompts)

    def limit_headers(self, now: float) -> dict[str, str]:
        if not self.rate_limit_headers:
            return {}
        return {**self.requests_bucket.headers("requests", now), **self.tokens_bucket.headers("tokens", now)}

    def admit(self, tokens: int) -> tuple[float, dict[str, str]]:
        """(0, headers) when the rate limits let the request in now, else (seconds to wait, headers); the headers
        say the buckets' state after the decision, as OpenAI's do."""
        with self.lock:
            now = time.monotonic()
            wait_requests = self.requests_bucket.wait_for(1, now)
            if wait_requests:
                return wait_requests, self.limit_headers(now)
            wait_tokens = self.tokens_bucket.wait_for(tokens, now)
            if wait_tokens:
                self.requests_bucket.level += 1  # give the request slot back
                return wait_tokens, self.limit_headers(now)
            self.stats["admitted_requests"] += 1
            self.stats["admitted_tokens"] += tokens
            self.stats["first_admit"] = self.stats["first_admit"] or now
            self.stats["last_admit"] = now
            return 0.0, self.limit_headers(now)

    # batches -------------------------------------------------------------------------------------------
    def run_batch(self, batch_id: str) -> None:
        time.sleep(self.batch_delay)
        with self.lock:
            batch = self.batches[batch_id]
            if batch["status"] in ("cancelling", "cancelled"):
                batch["status"] = "cancelled"
                return
            batch["status"] = "in_progress"
            batch["in_progress_at"] = int(time.time())
            faults = dict(self.batch_faults)
            lines = self.files[batch["input_file_id"]]["content"].decode("utf-8").splitlines()
        if faults.get("status") == "failed":
            with self.lock:
                batch["status"] = "failed"
                batch["errors"] = {"object": "list", "data": [{"code": "invalid_request", "message": "injected", "line": 1}]}
            return
        expire_after = faults.get("expire_after")
        fail_ids = set(faults.get("fail_custom_ids") or [])
        out, err = [], []
        for n, line in enumerate(lines):
            request = json.loads(line)
            custom_id = request["custom_id"]
            if expire_after is not None and n >= expire_after:
                err.append({"id": self.next_id("batch_req"), "custom_id": custom_id, "response": None,
                            "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}})
                continue
            if custom_id in fail_ids:
                err.append({"id": self.next_id("batch_req"), "custom_id": custom_id,
                            "response": {"status_code": 500, "request_id": self.next_id("req"), "body": _error("injected", "server_error")},
                            "error": None})
                continue
            # {"invalid": n}: the first n items of every request get a description that is not valid
            fault = {"kind": "invalid", "count": faults["invalid"]} if faults.get("invalid") else None
            status, headers, body, prompts, usage = self.answer(request["body"], fault=fault, batch=True)
            if status == 200:
                self.bill(headers["x-request-id"], usage, prompts, batch=True)
            entry = {"id": self.next_id("batch_req"), "custom_id": custom_id,
                     "response": {"status_code": status, "request_id": headers.get("x-request-id"), "body": body},
                     "error": None}
            (out if status == 200 else err).append(entry)
        with self.lock:
            for name, rows in (("output_file_id", out), ("error_file_id", err)):
                if rows:
                    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
                    batch[name] = self.store_file(data, f"{batch_id}_{name}.jsonl", "batch_output")
            batch["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(err)}
            if expire_after is not None:
                batch["status"] = "expired"
                batch["expired_at"] = int(time.time())
            else:
                batch["status"] = "completed"
                batch["completed_at"] = int(time.time())

    def store_file(self, data: bytes, filename: str, purpose: str) -> str:
        file_id = self.next_id("file")
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "content": data,
        }
        return file_id


def _error(message: str, code: str, type_: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _file_public(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k != "content"}


def _client_gone(sock: socket.socket) -> bool:
    """True when the client closed the connection (killed, or gave up on a timeout)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _make_handler(server: FakeOpenAI):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        # plumbing --------------------------------------------------------------------------------------
        def _send(self, status: int, body: Any, headers: dict | None = None, raw: bytes | None = None) -> None:
            data = raw if raw is not None else json.dumps(body).encode("utf-8")
            try:
                self.send_response(status)
                headers = dict(headers or {})
                content_type = headers.pop("content-type", "application/octet-stream" if raw is not None else "application/json")
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, str(value))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("content-length") or 0))

        def _authorized(self) -> bool:
            if server.api_key is None or self.headers.get("authorization") == f"Bearer {server.api_key}":
                return True
            self._send(401, _error("Incorrect API key provided.", "invalid_api_key"))
            return False

        # routing ---------------------------------------------------------------------------------------
        def do_GET(self) -> None:  # noqa: N802
            path = urlparse(self.path).path.rstrip("/")
            if path == "/_stats":
                return self._send(200, server.snapshot())
            if not self._authorized():
                return
            if path == "/v1/models":
                data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in server.models]
                return self._send(200, {"object": "list", "data": data})
            if m := re.fullmatch(r"/v1/files/([^/]+)/content", path):
                entry = server.files.get(m.group(1))
                return self._send(404, _error("no such file", "not_found")) if not entry else self._send(200, None, raw=entry["content"])
            if m := re.fullmatch(r"/v1/files/([^/]+)", path):
                entry = server.files.get(m.group(1))
                return self._send(404, _error("no such file", "not_found")) if not entry else self._send(200, _file_public(entry))
            if path == "/v1/batches":  # newest first, in pages (limit, after), as the real API
                query = parse_qs(urlparse(self.path).query)
                limit = int(query.get("limit", ["20"])[0])
                after = query.get("after", [None])[0]
                with server.lock:
                    server.stats["batch_list_pages"] += 1
                    data = sorted(server.batches.values(), key=lambda b: (b["created_at"], b["id"]), reverse=True)
                    if after is not None:
                        ids = [b["id"] for b in data]
                        data = data[ids.index(after) + 1:] if after in ids else []
                    page = [dict(b) for b in data[:limit]]
                return self._send(200, {"object": "list", "data": page, "has_more": len(data) > limit,
                                        "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None})
            if m := re.fullmatch(r"/v1/batches/([^/]+)", path):
                with server.lock:
                    batch = dict(server.batches[m.group(1)]) if m.group(1) in server.batches else None
                return self._send(404, _error("no such batch", "not_found")) if not batch else self._send(200, batch)
            self._send(404, _error(f"unknown path {path}", "not_found"))

        def do_POST(self) -> None:  # noqa: N802
            path = urlparse(self.path).path.rstrip("/")
            raw = self._body()
            if path == "/_faults":
                server.add_faults(*json.loads(raw or b"[]"))
                return self._send(200, {"queued": len(server.faults)})
            if path == "/_batch_faults":
                server.batch_faults = json.loads(raw or b"{}")
                return self._send(200, server.batch_faults)
            if path == "/_reset":
                server.reset_stats()
                server.faults.clear()
                server.batch_faults = {}
                return self._send(200, {})
            if not self._authorized():
                return
            if path == "/v1/chat/completions":
                return self._chat(json.loads(raw))
            if path == "/v1/files":
                return self._upload(raw)
            if path == "/v1/batches":
                return self._create_batch(json.loads(raw))
            if m := re.fullmatch(r"/v1/batches/([^/]+)/cancel", path):
                with server.lock:
                    batch = server.batches.get(m.group(1))
                    if batch and batch["status"] in ("validating", "in_progress"):
                        batch["status"] = "cancelling"
                return self._send(200 if batch else 404, dict(batch) if batch else _error("no such batch", "not_found"))
            self._send(404, _error(f"unknown path {path}", "not_found"))

        # endpoints -------------------------------------------------------------------------------------
        def _chat(self, body: dict) -> None:
            with server.lock:
                server.stats["chat_requests"] += 1
                fault = server.faults.popleft() if server.faults else None
            kind = (fault or {}).get("kind")
            if kind == "status":
                with server.lock:
                    server.stats["injected"] += 1
                headers = {}
                if "retry_after_ms" in fault:
                    headers["retry-after-ms"] = fault["retry_after_ms"]
                if "retry_after" in fault:
                    headers["retry-after"] = fault["retry_after"]
                status = int(fault.get("status", 500))
                code = fault.get("code") or {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(status, "server_error")
                return self._send(status, _error(fault.get("message", f"injected {status}"), code), headers)
            if kind == "garbage":  # a 200 the client cannot use: a proxy's HTML page, or JSON of the wrong shape
                with server.lock:
                    server.stats["injected"] += 1
                if fault.get("body", "html") == "html":
                    return self._send(200, None, {"content-type": "text/html"},
                                      raw=b"<html><body><h1>502 Bad Gateway</h1></body></html>")
                return self._send(200, {"status": "ok", "result": []})
            status, headers, answer, prompts, usage = server.answer(body, fault=fault, batch=False)
            if status != 200:
                return self._send(status, answer, headers)
            wait, limits = server.admit(usage["total_tokens"])
            if wait:
                with server.lock:
                    server.stats["rate_limited"] += 1
                return self._send(
                    429,
                    _error("Rate limit reached for requests", "rate_limit_exceeded", "requests"),
                    {"retry-after-ms": int(wait * 1000) + 1, **limits},
                )
            headers = {**headers, **limits}
            delay = server.latency + (float(fault.get("seconds", 5.0)) if kind == "timeout" else 0.0)
            deadline = time.monotonic() + delay
            while (left := deadline - time.monotonic()) > 0:
                time.sleep(min(left, 0.05))
                if _client_gone(self.connection):
                    break
            # A real server bills what it generated; here a client that is gone gets nothing and pays nothing,
            # so the billing stats say exactly which answers the client could have received.
            if _client_gone(self.connection):
                with server.lock:
                    server.stats["abandoned"] += 1
                self.close_connection = True
                return
            server.bill(headers["x-request-id"], usage, prompts, batch=False)
            self._send(200, answer, headers)

        def _upload(self, raw: bytes) -> None:
            ctype = self.headers.get("content-type", "")
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"content-type: " + ctype.encode() + b"\r\n\r\n" + raw
            )
            fields: dict[str, tuple[str | None, bytes]] = {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
            if "file" not in fields:
                return self._send(400, _error("missing file", "invalid_file"))
            filename, data = fields["file"]
            purpose = fields.get("purpose", (None, b"batch"))[1].decode()
            for n, line in enumerate(data.decode("utf-8").splitlines(), start=1):
                try:
                    json.loads(line)
                except ValueError:
                    return self._send(400, _error(f"line {n} is not JSON", "invalid_jsonl"))
            with server.lock:
                file_id = server.store_file(data, filename or "upload.jsonl", purpose)
                entry = _file_public(server.files[file_id])
            self._send(200, entry)

        def _create_batch(self, body: dict) -> None:
            with server.lock:
                if body.get("input_file_id") not in server.files:
                    return self._send(404, _error("no such input file", "not_found"))
                batch_id = server.next_id("batch")
                server.batches[batch_id] = {
                    "id": batch_id,
                    "object": "batch",
                    "endpoint": body.get("endpoint"),
                    "input_file_id": body["input_file_id"],
                    "completion_window": body.get("completion_window", "24h"),
                    "status": "validating",
                    "created_at": int(time.time()),
                    "metadata": body.get("metadata"),
                    "request_counts": {"total": 0, "completed": 0, "failed": 0},
                    "output_file_id": None,
                    "error_file_id": None,
                }
                batch = dict(server.batches[batch_id])
            threading.Thread(target=server.run_batch, args=(batch_id,), daemon=True).start()
            self._send(200, batch)

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default="sk-test")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per chat request")
    parser.add_argument("--rpm", type=float, default=None, help="requests per minute (429 beyond)")
    parser.add_argument("--tpm", type=float, default=None, help="tokens per minute (429 beyond)")
    parser.add_argument("--batch-delay", type=float, default=1.0)
    args = parser.parse_args(argv)
    fake = FakeOpenAI(api_key=args.api_key, latency=args.latency, rpm=args.rpm, tpm=args.tpm,
                      batch_delay=args.batch_delay, host=args.host, port=args.port)
    print(f"fake OpenAI server at {fake.base_url} (api key {args.api_key!r})", flush=True)
    try:
        fake.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake.httpd.server_close()


if __name__ == "__main__":
    main()
