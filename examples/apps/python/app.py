"""Tandem example app (Python): a WSGI app on the standard library's wsgiref server
with redis-py: a session counter, and a "shared document" edited under a fenced
lock. Run three of these behind a load balancer without stickiness; every instance
talks to Tandem through a load balancer that sends clients to mirrors (see
examples/README.md).

    TANDEM_URL=redis://127.0.0.1:7000 PORT=8201 APP_NAME=python1 python3 app.py

GET /?rid=ID  counts the visit in the session, then appends ID to the shared
              document's log under the lock; answers {app, n, token, rid} as JSON.
GET /doc      the document: its log and last edit.
GET /health   200 when Tandem answers PING (for the load balancer's checks).
"""

import json
import os
import secrets
import signal
import socketserver
import sys
from http.cookies import SimpleCookie
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import redis

TANDEM_URL = os.environ.get("TANDEM_URL", "redis://127.0.0.1:6379")
PORT = int(os.environ.get("PORT", "8080"))
APP_NAME = os.environ.get("APP_NAME", f"python-{PORT}")

# The shared document: its lock and its keys share a hash tag, so in an array of
# several stripes they live in one stripe (TANDEM.FENCED needs that).
LOCK, LOG, BODY = "{doc}lock", "{doc}log", "{doc}body"
LOCK_TTL_MS = 10_000  # a holder that dies loses the lock after this
LOCK_WAIT_MS = 10_000  # how long a request queues for the lock
SESSION_TTL_S = 3600
COOKIE = "sid"

pool = redis.ConnectionPool.from_url(TANDEM_URL, decode_responses=True)
tandem = redis.Redis(connection_pool=pool)


def edit_document(rid, text):
    """Takes the document's lock, appends `rid` to its log and rewrites its body,
    each write fenced by the token (a holder whose lease ran out cannot write), and
    lets the lock go. Returns the fencing token.

    A lock belongs to the session of the connection that took it, and
    TANDEM.LOCK ... WAIT blocks its connection: the edit holds one pooled connection
    for itself (single_connection_client) rather than one per command."""
    with redis.Redis(connection_pool=pool, single_connection_client=True) as r:
        token = r.execute_command("TANDEM.LOCK", LOCK, "TTL", LOCK_TTL_MS, "WAIT", LOCK_WAIT_MS)
        if token is None:
            raise RuntimeError(f"the lock {LOCK} was not free within {LOCK_WAIT_MS} ms")
        try:
            r.execute_command("TANDEM.FENCED", LOCK, token, "RPUSH", LOG, rid)
            r.execute_command("TANDEM.FENCED", LOCK, token, "SET", BODY, text)
        finally:
            r.execute_command("TANDEM.UNLOCK", LOCK, token)
        return token


def session_id(environ):
    """The session id from the cookie, or a new one (and its Set-Cookie header)."""
    cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
    if COOKIE in cookie and len(cookie[COOKIE].value) == 32:
        return cookie[COOKIE].value, []
    sid = secrets.token_hex(16)
    return sid, [("Set-Cookie", f"{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax")]


def visit(environ):
    """The session is a hash `sess:<id>`; HINCRBY counts the visit in one write, so
    two instances serving the same session at once cannot lose an update."""
    sid, headers = session_id(environ)
    key = f"sess:{sid}"
    n = tandem.hincrby(key, "n", 1)
    tandem.expire(key, SESSION_TTL_S)
    query = parse_qs(environ.get("QUERY_STRING", ""))
    rid = query.get("rid", [secrets.token_hex(8)])[0]
    token = edit_document(rid, f"edit {rid} by {APP_NAME} (visit {n} of its session)")
    return {"app": APP_NAME, "n": n, "token": token, "rid": rid}, headers


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    try:
        if path == "/health":
            tandem.ping()
            return respond(start_response, "200 OK", f"PONG {APP_NAME}\n", "text/plain")
        if path == "/doc":
            log = tandem.lrange(LOG, 0, -1)
            body = {"app": APP_NAME, "body": tandem.get(BODY), "edits": len(log), "log": log}
            return respond(start_response, "200 OK", json.dumps(body))
        if path == "/":
            body, headers = visit(environ)
            return respond(start_response, "200 OK", json.dumps(body), headers=headers)
        return respond(start_response, "404 Not Found", "not found\n", "text/plain")
    except redis.RedisError as e:
        print(f"{APP_NAME}: tandem: {e!r}", file=sys.stderr, flush=True)
        status = "503 Service Unavailable" if path == "/health" else "500 Internal Server Error"
        return respond(start_response, status, f"tandem: {e}\n", "text/plain")


def respond(start_response, status, text, content_type="application/json", headers=()):
    data = text.encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data))), *headers])
    return [data]


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = make_server("127.0.0.1", PORT, app, server_class=ThreadingWSGIServer, handler_class=QuietHandler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"{APP_NAME} listening on http://127.0.0.1:{PORT}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
