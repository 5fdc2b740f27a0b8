"""Tandem example app (Python): a WSGI app on the standard library's wsgiref server
with redis-py: a session counter, and a "shared document" edited under a fenced
lock. Run three of these behind a load balancer without stickiness; every instance
talks to Tandem through a load balancer that sends clients to mirrors (see
examples/README.md).

    TANDEM_URL=redis://127.0.0.1:7000 PORT=8201 APP_NAME=python1 python3 app.py

GET /?rid=ID  counts the visit in the session, then appends ID to the shared
              document's log under the lock; answers {app, n, token, rid} as JSON.
GET /doc      the document: its log and last edit.
GET /members  the instances in the group "apps", and the broadcasts this one heard.
GET /health   200 when Tandem answers PING (for the load balancer's checks).
"""

import collections
import json
import os
import secrets
import signal
import socketserver
import sys
import threading
import time
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
# Broadcasts: every edit is announced here; the group's joins and leaves come on
# Tandem's own channel for the group.
GROUP = "apps"
CHANGES = "doc:changes"
GROUP_EVENTS = f"__tandem__:group:{GROUP}"
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


heard = collections.deque(maxlen=20)  # what this instance heard on the channels


def membership():
    """Keeps this instance in the group: a connection of its own with an explicit
    session; after a reconnect it RESUMEs the session (within the
    client-reconnect-window it is still the same member), else opens a new one and
    joins again. It leaves the group a window after the instance dies."""
    session = None
    while True:
        try:
            with redis.Redis.from_url(TANDEM_URL, decode_responses=True, single_connection_client=True) as r:
                try:
                    if session is None:
                        raise redis.ResponseError("no session yet")
                    r.execute_command("TANDEM.SESSION", "RESUME", session)
                except redis.ResponseError:
                    session = r.execute_command("TANDEM.SESSION", "OPEN")
                r.execute_command("TANDEM.GROUP", "JOIN", GROUP, APP_NAME, f"http://127.0.0.1:{PORT}/")
                while True:  # the connection stays open: that keeps the session alive
                    r.ping()
                    time.sleep(5)
        except redis.RedisError as e:
            print(f"{APP_NAME}: membership: {e!r}; again in 1 s", file=sys.stderr, flush=True)
            time.sleep(1)


def listen():
    """Hears the broadcasts (edits of every instance, the group's joins and leaves)."""
    while True:
        try:
            pubsub = redis.Redis.from_url(TANDEM_URL, decode_responses=True).pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(CHANGES, GROUP_EVENTS)
            for message in pubsub.listen():
                heard.append(f"{message['channel']}: {message['data']}")
        except redis.RedisError as e:
            print(f"{APP_NAME}: listener: {e!r}; again in 1 s", file=sys.stderr, flush=True)
            time.sleep(1)


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
    tandem.publish(CHANGES, f"{rid} edited by {APP_NAME} with token {token}")
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
        if path == "/members":
            flat = tandem.execute_command("TANDEM.GROUP", "MEMBERS", GROUP)
            members = flat if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2]))
            body = {"app": APP_NAME, "members": members, "heard": list(heard)}
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
    threading.Thread(target=membership, daemon=True).start()
    threading.Thread(target=listen, daemon=True).start()
    print(f"{APP_NAME} listening on http://127.0.0.1:{PORT}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
