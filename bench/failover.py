#!/usr/bin/env python3
"""Failover time, driven by bench/failover.sh: ROUNDS times, kill -9 the active and
time from the kill to the first write a client gets acknowledged after it.

A writer thread SETs failover:counter to 1, 2, 3, ... without pause, each with a short
socket timeout (--timeout); on any error (refused, timeout, an error reply) it moves to
the next server's client port and tries again. The main thread, each round: waits until
the stripe is whole (one ACTIVE-COORDINATOR, every other server PASSIVE-STANDBY, from
INFO replication's tandem_state, or from --status-cmd's output) and the writer has an acknowledgement; reads the
active's pid from WORK/NAME.pid; takes time.monotonic() and sends SIGKILL; waits for the
first SET that was sent after the kill and acknowledged (its reply is the end of the
failover); restarts the killed server with the command line in WORK/NAME.cmd (stderr to
WORK/NAME.log, its pid written back to WORK/NAME.pid, so the caller's cleanup finds it).

Beside it, a client of a mirror (DESIGN.md §6, transparent failover): each round it is
moved to a server that is a mirror at the time of the kill and INCRs failover:mirror
without pause over one connection with a long timeout, never retrying by itself. Its
errors, its duplicates (an INCR reply that skips a number: a write applied twice) and
each round's longest wait for one reply (the latency the failover added) are reported.

At the end the counter is read back: it must be at least the last acknowledged value
(an acknowledged write was lost otherwise).

  python3 bench/failover.py --work DIR --members server1:9510,server2:9511,server3:9512 --rounds 20

--state-from-role reads INFO replication's role (master = active, slave = passive)
instead of tandem_state: only for trying the machinery against plain redis-server
(with --restart-first, as a lone server has no one to fail over to).
"""
import argparse
import os
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

KEY = "failover:counter"
MIRROR_KEY = "failover:mirror"


def client(port, timeout):
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=timeout,
                       retry=Retry(NoBackoff(), 0), single_connection_client=True)


class Writer(threading.Thread):
    def __init__(self, ports, timeout):
        super().__init__(daemon=True)
        self.ports, self.timeout = ports, timeout
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.n = 0                 # last value sent
        self.acked = 0             # last value acknowledged
        self.last_ack = 0.0        # monotonic time of the last acknowledgement
        self.errors = 0
        self.kill_time = None      # set by the main thread right before the kill
        self.first_after = None    # (ack time, port) of the first SET sent after kill_time
        self.got_first = threading.Event()

    def arm(self, t):
        with self.lock:
            self.kill_time, self.first_after = t, None
            self.got_first.clear()

    def run(self):
        i, r = 0, None
        while not self.stop.is_set():
            port = self.ports[i % len(self.ports)]
            try:
                if r is None:
                    r = client(port, self.timeout)
                self.n += 1
                sent = time.monotonic()
                r.set(KEY, self.n)
                acked = time.monotonic()
                with self.lock:
                    self.acked, self.last_ack = self.n, acked
                    if self.kill_time is not None and self.first_after is None and sent > self.kill_time:
                        self.first_after = (acked, port)
                        self.got_first.set()
            except (redis.RedisError, OSError) as e:
                self.errors += 1
                if r is not None:
                    try:
                        r.close()
                    except Exception:
                        pass
                r, i = None, i + 1
                if isinstance(e, (redis.ConnectionError, redis.ResponseError)) and not isinstance(e, redis.TimeoutError):
                    time.sleep(0.002)  # refused at once: do not spin against a dead port


class MirrorClient(threading.Thread):
    """INCRs failover:mirror on the port given by use(), one command at a time."""

    def __init__(self, timeout):
        super().__init__(daemon=True)
        self.timeout = timeout
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.port = None
        self.last = 0            # last INCR reply
        self.acked_at = 0.0      # monotonic time of the last reply
        self.errors = []
        self.duplicates = 0
        self.round_max = 0.0     # longest wait for one reply since reset()

    def use(self, port):
        with self.lock:
            self.port = port

    def reset(self):
        with self.lock:
            self.round_max = 0.0

    def run(self):
        r, on = None, None
        while not self.stop.is_set():
            with self.lock:
                port = self.port
            if port is None:
                time.sleep(0.01)
                continue
            try:
                if r is None or on != port:
                    if r is not None:
                        r.close()
                    r, on = client(port, self.timeout), port
                sent = time.monotonic()
                v = r.incr(MIRROR_KEY)
                done = time.monotonic()
                with self.lock:
                    if v != self.last + 1:
                        self.duplicates += 1
                    self.last, self.acked_at = v, done
                    self.round_max = max(self.round_max, done - sent)
            except (redis.RedisError, OSError) as e:
                with self.lock:
                    self.errors.append(f"{type(e).__name__}: {e}")
                r = None
                time.sleep(0.01)


def states(members, from_role, status_cmd=None):
    if status_cmd:  # `tandem status --config FILE`: STRIPE SERVER ROLE STATE ...
        res = subprocess.run(shlex.split(status_cmd), capture_output=True, text=True)
        rows = [line.split() for line in res.stdout.splitlines()]
        got = {r[1]: r[3] for r in rows if len(r) > 3 and r[2] == "server"}
        return {name: got.get(name) for name, _ in members}
    out = {}
    for name, port in members:
        try:
            info = client(port, 0.5).info("replication")
        except (redis.RedisError, OSError):
            out[name] = None
            continue
        if from_role:
            out[name] = {"master": "ACTIVE-COORDINATOR", "slave": "PASSIVE-STANDBY"}.get(info.get("role"))
        else:
            out[name] = info.get("tandem_state")
    return out


def wait_whole(members, from_role, status_cmd=None, deadline_s=60.0):
    """Until one server is ACTIVE-COORDINATOR and all others PASSIVE-STANDBY: the active's name."""
    end = time.monotonic() + deadline_s
    while True:
        s = states(members, from_role, status_cmd)
        active = [n for n, v in s.items() if v == "ACTIVE-COORDINATOR"]
        if len(active) == 1 and all(v == "PASSIVE-STANDBY" for n, v in s.items() if n != active[0]):
            return active[0]
        if time.monotonic() > end:
            raise SystemExit(f"failover: stripe not whole after {deadline_s:.0f} s: {s}")
        time.sleep(0.05)


def dead(pid):
    """The process is gone or a zombie (killed, not yet reaped by its parent)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def restart(work, name, procs):
    cmd = shlex.split(open(os.path.join(work, name + ".cmd")).read())
    log = open(os.path.join(work, name + ".log"), "ab")
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
    procs[name] = p
    with open(os.path.join(work, name + ".pid"), "w") as f:
        f.write(f"{p.pid}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True)
    ap.add_argument("--members", required=True, help="name:client-port,... (servers only, not voters)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=0.25, help="the writer's socket timeout, seconds")
    ap.add_argument("--status-cmd", help="read states from this command's output (tandem status --config FILE) instead of INFO")
    ap.add_argument("--state-from-role", action="store_true")
    ap.add_argument("--restart-first", action="store_true",
                    help="restart the killed server before waiting for the first write (a lone server: kill → restarted and writable)")
    args = ap.parse_args()
    members = [(m.split(":")[0], int(m.split(":")[1])) for m in args.members.split(",")]

    procs = {}  # servers this script restarted (the first ones are the caller's children)
    wait_whole(members, args.state_from_role, args.status_cmd)
    w = Writer([p for _, p in members], args.timeout)
    w.start()
    mc = MirrorClient(10.0)
    mc.start()
    times, waits = [], []
    for rnd in range(1, args.rounds + 1):
        active = wait_whole(members, args.state_from_role, args.status_cmd)
        for name, p in procs.items():
            if p.poll() is not None:
                raise SystemExit(f"failover: restarted {name} exited ({p.returncode}): see its .log")
        t = time.monotonic()
        while w.last_ack < t:  # the writer is through before the kill
            if time.monotonic() - t > 30:
                raise SystemExit("failover: the writer has no acknowledgement on a whole stripe")
            time.sleep(0.01)
        mirror_port = next(p for n, p in members if n != active)
        mc.use(mirror_port)
        t = time.monotonic()
        while mc.acked_at < t:  # the mirror's client is through on its new server
            if time.monotonic() - t > 30:
                raise SystemExit("failover: the mirror's client has no reply on a whole stripe")
            time.sleep(0.01)
        time.sleep(0.2)
        mc.reset()
        pid = int(open(os.path.join(args.work, active + ".pid")).read())
        w.arm(time.monotonic())
        os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + 5
        while not dead(pid):
            if time.monotonic() > end:
                raise SystemExit(f"failover: {active} (pid {pid}) still alive 5 s after SIGKILL")
            time.sleep(0.001)
        if args.restart_first:
            if active in procs:
                procs[active].wait()
            restart(args.work, active, procs)
        if not w.got_first.wait(60):
            raise SystemExit(f"failover: round {rnd}: no write acknowledged within 60 s of killing {active}")
        with w.lock:
            acked_at, port = w.first_after
            ft = acked_at - w.kill_time
        times.append(ft)
        killed_at = w.kill_time
        while mc.acked_at < acked_at:  # the mirror's client has a reply from after the failover
            if time.monotonic() - killed_at > 60:
                raise SystemExit(f"failover: round {rnd}: the mirror's client got no reply within 60 s of the kill")
            time.sleep(0.01)
        with mc.lock:
            waits.append(mc.round_max)
        print(f"round {rnd:2d}: killed {active} (pid {pid}), first acknowledged write after {ft * 1000:8.1f} ms (via port {port});"
              f" mirror client's longest wait {mc.round_max * 1000:8.1f} ms", flush=True)
        if not args.restart_first:
            if active in procs:
                procs[active].wait()
            restart(args.work, active, procs)
    wait_whole(members, args.state_from_role, args.status_cmd)
    time.sleep(0.2)
    w.stop.set()
    w.join(5)
    mc.stop.set()
    mc.join(15)
    final = None
    for _, port in members:
        try:
            final = int(client(port, 2).get(KEY))
            break
        except (redis.RedisError, OSError, TypeError):
            continue
    ms = sorted(x * 1000 for x in times)
    rank99 = max(1, -(-99 * len(ms) // 100))  # nearest rank: ceil(0.99 n); with n < 100 that is the maximum
    print()
    print(f"rounds {len(ms)}  median {statistics.median(ms):.1f} ms  p99 {ms[rank99 - 1]:.1f} ms"
          f"{'  (p99 = max: fewer than 100 rounds)' if len(ms) < 100 else ''}  min {ms[0]:.1f} ms  max {ms[-1]:.1f} ms")
    print(f"writer: {w.acked} writes acknowledged, {w.errors} errors/timeouts retried; counter read back {final}"
          f" ({'OK' if final is not None and final >= w.acked else 'LOST ACKNOWLEDGED WRITES'})")
    mirror_final = None
    for _, port in members:
        try:
            mirror_final = int(client(port, 2).get(MIRROR_KEY))
            break
        except (redis.RedisError, OSError, TypeError):
            continue
    ws = sorted(x * 1000 for x in waits)
    print(f"mirror client: {mc.last} INCRs acknowledged, {len(mc.errors)} errors, {mc.duplicates} duplicates;"
          f" counter read back {mirror_final}; longest wait per kill: median {statistics.median(ws):.1f} ms,"
          f" p99 {ws[rank99 - 1]:.1f} ms, max {ws[-1]:.1f} ms")
    for e in mc.errors[:5]:
        print(f"  mirror client error: {e}")
    if final is None or final < w.acked:
        sys.exit(1)
    if mc.errors or mc.duplicates or mirror_final != mc.last:
        sys.exit(1)


if __name__ == "__main__":
    main()
