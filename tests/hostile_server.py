#!/usr/bin/env python3
"""A hostile HTTP server for the tests: answers what a test scripts, byte for byte.

The simulator (tests/simulator/) behaves like the service, faults included; this server behaves like nothing
at all.  It sends whatever a test asks for: status lines that are not HTTP, header lines of any length, secrets
echoed back, bodies of any shape, endless pages, answers that never come, and random answers for the fuzzer.
Standard library only, loopback only, one connection per request (every answer ends with `Connection: close`).

    hostile_server.py [--host 127.0.0.1] [--port 0] [--port-file PATH] [--parent-pid PID]

Prints one JSON line {"port": P, "pid": N} (also to --port-file, atomically) and serves until SIGTERM, or
until --parent-pid is gone.  Control API on the same port, never scripted:

    POST /_hostile/script   {"answers": [answer, ...], "default": answer | null}
                            answers are used once each, in order; then `default` for every request (when
                            null: 500 "nothing scripted")
    GET  /_hostile/requests {"requests": [{"method", "path", "headers"}, ...]}  (cleared by each script)

An answer (every field optional):
    status_line  default "HTTP/1.1 200 OK"
    headers      [[name, value], ...]
    body         a string; json: any JSON value instead (encoded)
    big_header   n: adds `X-Big: aaa...` of n bytes
    delay        seconds to wait before answering (the connection stays open)
    hang_up      true: close without sending a byte
    raw          sent as is (nothing added), then the connection is closed
    pages        {"field": "pipelines", "total": N, "repeat": false}: a full page of `limit` items (the
                 request body's limit) with ids from the offset, or (repeat) always the same page
    random       a seed: a random answer of the kinds a fuzzer wants, drawn from a generator seeded with it
                 once (each request draws the next answer)
In status_line, header values and body, `{{NAME}}` is replaced by the request's header NAME (lower case), and
`{{body}}` by the request's body (line breaks as spaces): a server echoing secrets back.
"""
import argparse
import json
import os
import random
import re
import signal
import socket
import socketserver
import sys
import threading
import time

LOCK = threading.Lock()
STATE = {"answers": [], "default": None, "requests": [], "random": None}


def read_request(sock):
    """Reads one request: method, path, headers (lower-case names), body; None when the client went."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 1 << 20:
            return None
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path = (lines[0].split(" ") + ["", ""])[:2]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return method, path, headers, rest[:length].decode("utf-8", "replace")


def fill(text, headers):
    return re.sub(r"\{\{([a-z0-9-]+)\}\}", lambda m: headers.get(m.group(1), ""), text)


def page_of(spec, body):
    try:
        query = json.loads(body) if body else {}
    except ValueError:
        query = {}
    limit = int(query.get("limit") or 10) if isinstance(query, dict) else 10
    offset = 0 if spec.get("repeat") else (int(query.get("offset") or 0) if isinstance(query, dict) else 0)
    field = spec.get("field", "pipelines")
    items = []
    for i in range(offset, offset + limit):
        ident = "%032x" % (i + 1)
        items.append({"pipeline_id": ident, "id": ident, "name": "p%d" % i, "status": "COMPLETED"})
    return {"total": spec.get("total", 1e9), field: items}


RANDOM_STATUS = [200, 200, 200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 502, 503, 504, 999]
RANDOM_BODIES = [
    {"success": True}, {"success": False}, {"pipeline_run_id": "a" * 32}, {"status": "COMPLETED"},
    {"status": "RUNNING", "stages": [1]}, {"status": 5}, {"total": 1e300, "pipelines": [5]},
    {"total": 2, "pipeline_runs": [{"id": "b" * 32, "status": "FAILED"}]}, [], [{"status": "FAILED"}],
    {"error_code": {}, "error_msg": []}, {"error_code": "APIGW.0308"}, None, "text", 1e308,
    {"status": "FAILED", "end_time": 1e300, "start_time": -1, "jobs": [5]},
]


def random_answer(rng):
    kind = rng.randrange(10)
    if kind == 0:
        return {"raw": rng.choice(["", "HTTP/1.1 abc\r\n\r\n", "000\r\n\r\n", "HTTP/9.9 200 OK\r\n\r\n",
                                   "garbage\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"succ"])}
    if kind == 1:
        return {"hang_up": True}
    if kind == 2:
        return {"delay": rng.choice([0.01, 0.05, 0.2]), "json": rng.choice(RANDOM_BODIES)}
    headers = []
    if rng.random() < 0.3:
        headers.append(["Retry-After", rng.choice(["0", "1", "99999999999", "abc", "-5",
                                                   "Wed, 21 Oct 2099 07:28:00 GMT"])])
    if rng.random() < 0.3:
        headers.append(["X-Request-Id", rng.choice(["{{x-auth-token}}", "{{authorization}}", "id\x01\x7fok",
                                                    "x" * 300])])
    status = rng.choice(RANDOM_STATUS)
    answer = {"status_line": "HTTP/1.1 %d Whatever" % status, "headers": headers}
    if rng.random() < 0.1:
        answer["body"] = rng.choice(["<html>", "{", "\x00\xff", "null"])
    else:
        answer["json"] = rng.choice(RANDOM_BODIES)
    if rng.random() < 0.05:
        answer["big_header"] = rng.choice([1000, 200000])
    return answer


def send_answer(sock, answer, method, headers, body):
    headers = dict(headers, body=body.replace("\r", " ").replace("\n", " "))
    if answer.get("random") is not None:
        with LOCK:
            if STATE["random"] is None:
                STATE["random"] = random.Random(answer["random"])
            answer = random_answer(STATE["random"])
    if answer.get("delay"):
        time.sleep(float(answer["delay"]))
    if answer.get("hang_up"):
        return
    if "raw" in answer:
        sock.sendall(fill(answer["raw"], headers).encode("latin-1", "replace"))
        return
    if "pages" in answer:
        text = json.dumps(page_of(answer["pages"], body))
    elif "json" in answer:
        text = json.dumps(answer["json"])
    else:
        text = answer.get("body", "")
    payload = fill(text, headers).encode("utf-8", "replace")
    lines = [fill(answer.get("status_line", "HTTP/1.1 200 OK"), headers)]
    for name, value in answer.get("headers", []):
        lines.append("%s: %s" % (name, fill(value, headers)))
    if answer.get("big_header"):
        lines.append("X-Big: " + "a" * int(answer["big_header"]))
    lines += ["Content-Type: application/json", "Content-Length: %d" % len(payload), "Connection: close"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
    sock.sendall(head + (b"" if method == "HEAD" else payload))


def control(sock, method, path, body):
    if method == "POST" and path == "/_hostile/script":
        script = json.loads(body or "{}")
        with LOCK:
            STATE["answers"] = list(script.get("answers") or [])
            STATE["default"] = script.get("default")
            STATE["requests"] = []
            STATE["random"] = None
        reply = {"ok": True}
    elif method == "GET" and path == "/_hostile/requests":
        with LOCK:
            reply = {"requests": list(STATE["requests"])}
    else:
        reply = {"error": "unknown control call"}
    payload = json.dumps(reply).encode()
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(payload) + payload)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            request = read_request(self.request)
            if request is None:
                return
            method, path, headers, body = request
            bare = path.split("?", 1)[0]
            if bare.startswith("/_hostile/"):
                control(self.request, method, bare, body)
                return
            with LOCK:
                STATE["requests"].append({"method": method, "path": path, "headers": headers})
                answer = STATE["answers"].pop(0) if STATE["answers"] else STATE["default"]
            if answer is None:
                answer = {"status_line": "HTTP/1.1 500 Nothing Scripted", "json": {"error_msg": "nothing scripted"}}
            send_answer(self.request, answer, method, headers, body)
        except (OSError, ValueError):
            pass  # the client went away, or sent what we cannot read: nothing to answer
        finally:
            try:
                self.request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--parent-pid", type=int)
    args = parser.parse_args()
    server = Server((args.host, args.port), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    line = json.dumps({"port": server.server_address[1], "pid": os.getpid()})
    print(line, flush=True)
    if args.port_file:
        tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(line + "\n")
        os.replace(tmp, args.port_file)
    while not stop.wait(0.5):
        if args.parent_pid:
            try:
                os.kill(args.parent_pid, 0)
            except ProcessLookupError:
                break
            except PermissionError:
                pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
