"""The HTTP side of the stand-in: SGLang's probe, model and chat endpoints."""

from __future__ import annotations

import json
import secrets
import socket
import time
import uuid
from argparse import Namespace
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from ._log import log


@dataclass
class Status:
    args: Namespace
    up: bool = False  # warm-up done
    exiting: bool = False  # SIGTERM received, draining

    @property
    def healthy(self) -> bool:
        return self.up and not self.exiting

    @property
    def served_model_name(self) -> str:
        return getattr(self.args, "served_model_name", None) or self.args.model_path


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 2048  # SGLang serves through uvicorn, whose listen backlog is 2048 (socketserver's: 5)

    def __init__(self, status: Status):
        self.status = status
        host, port = status.args.host, status.args.port
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), Handler)


def auth_exempt(path: str) -> bool:
    # sglang/srt/utils/auth.py matches these by prefix
    return path.startswith(("/health", "/ready", "/metrics"))


def authorized(header: str | None, key: str) -> bool:
    scheme, _, token = (header or "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(token.encode(), key.encode())


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn serves SGLang (every reply has a Content-Length)
    disable_nagle_algorithm = True  # TCP_NODELAY, as uvicorn sets it: headers and body are separate writes

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def route(self, method: str) -> None:
        status = self.server.status
        path = urlsplit(self.path).path
        key = getattr(status.args, "api_key", None)
        if key and not auth_exempt(path) and not authorized(self.headers.get("Authorization"), key):
            return self.reply(401, {"error": "Unauthorized"})
        if method == "GET" and path in ("/health", "/health_generate", "/ready", "/ping"):
            return self.reply(200 if status.healthy else 503, None)
        if method == "GET" and path == "/metrics" and getattr(status.args, "enable_metrics", False):
            return self.reply(200, "sglang:num_running_reqs 0.0\nsglang:num_queue_reqs 0.0\n")
        if method == "GET" and path == "/v1/models":
            return self.reply(200, models(status))
        if method == "GET" and path in ("/model_info", "/get_model_info"):
            return self.reply(200, model_info(status))
        if method == "POST" and path == "/v1/chat/completions":
            if status.exiting:
                return self.reply(503, {"error": "The server is shutting down"})
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                return self.reply(200, chat_completion(status, body))
            except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
                return self.reply(400, {"object": "error", "message": f"bad request: {error!r}"})
        self.reply(404, {"detail": "Not Found"})

    def reply(self, code: int, body) -> None:
        if body is None:
            data, kind = b"", "text/plain"
        elif isinstance(body, str):
            data, kind = body.encode(), "text/plain; version=0.0.4"
        else:
            data, kind = json.dumps(body).encode(), "application/json"
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        log(f"{self.address_string()} - {format % args}")


def models(status: Status) -> dict:
    args = status.args
    card = {
        "id": status.served_model_name,
        "object": "model",
        "created": int(time.time()),
        "owned_by": "sglang",
        "root": args.model_path,
        "max_model_len": getattr(args, "context_length", None) or 4096,
    }
    return {"object": "list", "data": [card]}


def model_info(status: Status) -> dict:
    args = status.args
    return {
        "model_path": args.model_path,
        "served_model_name": status.served_model_name,
        "tokenizer_path": getattr(args, "tokenizer_path", None) or args.model_path,
        "is_generation": True,
        "reasoning_parser": getattr(args, "reasoning_parser", None),
        "tool_call_parser": getattr(args, "tool_call_parser", None),
    }


def text_of(content) -> str:
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def chat_completion(status: Status, body: dict) -> dict:
    args = status.args
    last_user = [m for m in body["messages"] if m.get("role") == "user"][-1]
    text = text_of(last_user.get("content"))
    message = {"role": "assistant", "content": text, "reasoning_content": None, "tool_calls": None}
    thinking = (body.get("chat_template_kwargs") or {}).get("enable_thinking", True)
    if getattr(args, "reasoning_parser", None) and thinking is not False:
        message["reasoning_content"] = f"The user said: {text}"
    tools = body.get("tools")
    finish_reason = "stop"
    if tools and getattr(args, "tool_call_parser", None):
        call = {"name": tools[0]["function"]["name"], "arguments": "{}"}
        message["tool_calls"] = [{"id": f"call_{uuid.uuid4().hex[:24]}", "index": 0, "type": "function", "function": call}]
        finish_reason = "tool_calls"
    tokens = len(text.split())
    return {
        "id": uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": status.served_model_name,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": tokens, "completion_tokens": tokens, "total_tokens": 2 * tokens},
    }
