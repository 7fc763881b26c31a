"""A local OpenAI-compatible judge server that scores with exact rules instead of a model (docs/PAPER.md#embedded-default: the
embedded default runs the very same ``openai`` client path offline).

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions`` (also without the ``/v1`` prefix). The server reads the
``### …`` sections of the prompts built by :mod:`.prompts` and answers with the rules of :mod:`.rules`:
a TwiFF-Bench prompt gets ``{"cot_score": c, "answer_score": a}``; a yes/no prompt gets ``yes``/``no`` (or
``{"answer": "yes"}`` in JSON mode). Any other prompt gets HTTP 400.

Fault injection (:class:`FaultConfig`): for each chat request a RNG seeded by ``(seed, sha256(body), n)`` — ``n``
counting arrivals of the same body — decides, in this order of probability mass, an HTTP error (500 or 429, half
each), a hang past the client's timeout (``hang_s``, released when the server closes), or a malformed reply
(invalid JSON, JSON without scores, a boolean score, a non-yes/no word). The draw depends only on the request and how
often it was seen, so a run is reproducible whatever the concurrency. ``latency_s`` delays every reply.

Binds loopback only unless ``allow_remote=True``. Built on ``http.server.ThreadingHTTPServer`` with HTTP/1.1
keep-alive.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import random
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fl1_core.judge.prompts import (
    SEC_GROUND_TRUTH,
    SEC_MODEL_ANSWER,
    SEC_MODEL_REASONING,
    SEC_REFERENCE,
    message_text,
    parse_sections,
)
from fl1_core.judge.rules import rule_scores, rule_yes_no

__all__ = ["FaultConfig", "JudgeServerHandle", "start_judge_server", "serve", "DEFAULT_JUDGE_MODEL", "judge_reply"]

log = logging.getLogger(__name__)

DEFAULT_JUDGE_MODEL = "fl1-rule-judge"

_MALFORMED_SCORE_REPLIES = (
    '{"cot_score": 3, "answer_score": ',
    "I am unable to score this sample.",
    '{"comment": "scores omitted"}',
    '{"cot_score": true, "answer_score": 4}',
)
_MALFORMED_YESNO_REPLIES = ("maybe", "Yes, the answers match.", '{"answer": "perhaps"}', "")


@dataclass
class FaultConfig:
    """Probabilities of injected faults per chat request (they must sum to ≤ 1), a fixed latency and the seed."""

    error_rate: float = 0.0
    timeout_rate: float = 0.0
    malformed_rate: float = 0.0
    latency_s: float = 0.0
    seed: int = 0
    hang_s: float = 120.0

    def __post_init__(self) -> None:
        rates = (self.error_rate, self.timeout_rate, self.malformed_rate)
        if any(r < 0 for r in rates) or sum(rates) > 1.0 + 1e-9:
            raise ValueError(f"fault rates must be ≥ 0 and sum to ≤ 1, got {rates}")


def judge_reply(request: dict[str, Any]) -> tuple[str, str] | None:
    """The exact reply to a chat request: ``(task, content)`` with task ``twiff`` or ``yesno``; None if unknown."""
    messages = request.get("messages") or []
    user = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not user:
        return None
    sections = parse_sections(message_text(user[-1]))
    json_mode = (request.get("response_format") or {}).get("type") in ("json_object", "json_schema")
    if SEC_REFERENCE in sections and SEC_MODEL_ANSWER in sections:
        cot, ans = rule_scores(
            sections.get(SEC_REFERENCE, ""),
            sections.get(SEC_GROUND_TRUTH, ""),
            sections.get(SEC_MODEL_REASONING, ""),
            sections.get(SEC_MODEL_ANSWER, ""),
        )
        return "twiff", json.dumps({"cot_score": cot, "answer_score": ans})
    if SEC_GROUND_TRUTH in sections and SEC_MODEL_ANSWER in sections:
        word = "yes" if rule_yes_no(sections[SEC_GROUND_TRUTH], sections[SEC_MODEL_ANSWER]) else "no"
        return "yesno", json.dumps({"answer": word}) if json_mode else word
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the stdlib default (5) drops SYNs under a burst of reconnects

    def __init__(self, address: tuple[str, int], fault: FaultConfig, family: int) -> None:
        self.address_family = family
        self.fault = fault
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.seen: dict[str, int] = {}
        self.conns: set[socket.socket] = set()
        self.stats: dict[str, int] = {"chat_requests": 0, "models_requests": 0, "ok": 0, "bad_request": 0,
                                      "fault_http_500": 0, "fault_http_429": 0, "fault_hang": 0, "fault_malformed": 0}
        self.counter = 0
        self.auth_hashes: set[str] = set()  # sha256 of bearer tokens seen (never the tokens themselves)
        super().__init__(address, _Handler)

    def bump(self, key: str) -> None:
        with self.lock:
            self.stats[key] = self.stats.get(key, 0) + 1

    def fault_for(self, body: bytes) -> tuple[str | None, random.Random]:
        digest = hashlib.sha256(body).hexdigest()
        with self.lock:
            n = self.seen.get(digest, 0)
            self.seen[digest] = n + 1
        rng = random.Random(f"{self.fault.seed}:{digest}:{n}")
        u = rng.random()
        f = self.fault
        if u < f.error_rate:
            return ("http_500" if rng.random() < 0.5 else "http_429"), rng
        if u < f.error_rate + f.timeout_rate:
            return "hang", rng
        if u < f.error_rate + f.timeout_rate + f.malformed_rate:
            return "malformed", rng
        return None, rng


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.lock:
            self.server.conns.add(self.connection)

    def finish(self) -> None:
        with self.server.lock:
            self.server.conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("judge-server %s", format % args)

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, kind: str) -> None:
        self._send_json(status, {"error": {"message": message, "type": kind, "code": status}})

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            self.server.bump("models_requests")
            self._send_json(200, {"object": "list", "data": [
                {"id": DEFAULT_JUDGE_MODEL, "object": "model", "created": 0, "owned_by": "fl1"}]})
        else:
            self._error(404, f"no route {path}", "not_found")

    def do_POST(self) -> None:  # noqa: N802 (stdlib name)
        path = self.path.split("?", 1)[0].rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._error(404, f"no route {path}", "not_found")
            return
        self.server.bump("chat_requests")
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Bearer "):
            digest = hashlib.sha256(auth[len("Bearer "):].encode("utf-8")).hexdigest()
            with self.server.lock:
                self.server.auth_hashes.add(digest)
        try:
            request = json.loads(body)
            if not isinstance(request, dict):
                raise ValueError("body is not an object")
        except ValueError:
            self.server.bump("bad_request")
            self._error(400, "request body is not a JSON object", "invalid_request_error")
            return
        fault, rng = self.server.fault_for(body)
        if self.server.fault.latency_s > 0:
            self.server.stop_event.wait(self.server.fault.latency_s)
        if fault == "hang":
            self.server.bump("fault_hang")
            self.server.stop_event.wait(self.server.fault.hang_s)
            self.close_connection = True
            return
        if fault in ("http_500", "http_429"):
            self.server.bump(f"fault_{fault}")
            code = 500 if fault == "http_500" else 429
            self._error(code, "injected fault", "server_error" if code == 500 else "rate_limit_exceeded")
            return
        reply = judge_reply(request)
        if reply is None:
            self.server.bump("bad_request")
            self._error(400, "unrecognised judge prompt (expected ### sections)", "invalid_request_error")
            return
        task, content = reply
        if fault == "malformed":
            self.server.bump("fault_malformed")
            pool = _MALFORMED_SCORE_REPLIES if task == "twiff" else _MALFORMED_YESNO_REPLIES
            content = pool[rng.randrange(len(pool))]
        else:
            self.server.bump("ok")
        with self.server.lock:
            self.server.counter += 1
            n = self.server.counter
        prompt_tokens = sum(len(message_text(m).split()) for m in request.get("messages") or [] if isinstance(m, dict))
        completion_tokens = max(1, len(content.split()))
        self._send_json(200, {
            "id": f"chatcmpl-fl1-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model") or DEFAULT_JUDGE_MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class JudgeServerHandle:
    """A judge server running in a background thread. ``base_url`` ends in ``/v1``; ``close()`` stops it."""

    def __init__(self, server: _Server, thread: threading.Thread | None) -> None:
        self._server = server
        self._thread = thread
        host, port = server.server_address[:2]
        self.host, self.port = host, port
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{port}/v1"
        self._closed = False

    @property
    def stats(self) -> dict[str, int]:
        """Counters: chat_requests, ok, bad_request and one per injected fault kind."""
        with self._server.lock:
            return dict(self._server.stats)

    @property
    def auth_hashes(self) -> set[str]:
        """sha256 hex digests of the bearer tokens clients sent (lets tests check a key was sent without storing it)."""
        with self._server.lock:
            return set(self._server.auth_hashes)

    def close(self) -> None:
        """Stop serving, release hanging requests, close open connections."""
        if self._closed:
            return
        self._closed = True
        self._server.stop_event.set()
        if self._thread is not None:
            self._server.shutdown()
        with self._server.lock:
            conns = list(self._server.conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "JudgeServerHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JudgeServerHandle(base_url={self.base_url!r})"


def _make_server(host: str, port: int, fault: FaultConfig | None, allow_remote: bool) -> _Server:
    if not _is_loopback(host) and not allow_remote:
        raise ValueError(f"refusing to bind the judge server to non-loopback host {host!r}; pass allow_remote=True")
    bind = "127.0.0.1" if host == "localhost" else host
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    return _Server((bind, port), fault or FaultConfig(), family)


def start_judge_server(
    host: str = "127.0.0.1", port: int = 0, fault: FaultConfig | None = None, *, allow_remote: bool = False
) -> JudgeServerHandle:
    """Start the judge server in a daemon thread (``port=0`` picks a free port); use as a context manager."""
    server = _make_server(host, port, fault, allow_remote)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                              name="fl1-judge-server")
    thread.start()
    handle = JudgeServerHandle(server, thread)
    log.info("judge server listening on %s", handle.base_url)
    return handle


def serve(
    host: str = "127.0.0.1", port: int = 0, fault: FaultConfig | None = None, *, allow_remote: bool = False
) -> None:
    """Run the judge server in the foreground until interrupted (the ``fl1 judge-serve`` command)."""
    server = _make_server(host, port, fault, allow_remote)
    handle = JudgeServerHandle(server, None)
    log.info("judge server listening on %s (model %s)", handle.base_url, DEFAULT_JUDGE_MODEL)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        log.info("judge server interrupted")
    finally:
        handle.close()
