#!/usr/bin/env python3
"""SET load with an acknowledgement rule, one tool for Redis+WAIT and for tandem.

CLIENTS connections (default 50) each send PIPELINE SETs (random keys key:000000000000
.. KEYSPACE-1, VALUE_SIZE-byte values), followed, with --wait N, by one `WAIT N 0`,
then read every reply before sending the next batch. A batch counts PIPELINE
acknowledged writes only when every SET answered +OK and, with --wait N, WAIT
answered an integer >= N (Redis: every SET of the batch reached N replicas); a batch
whose WAIT answered fewer counts as "short" and adds nothing. Without --wait the SETs
alone are the acknowledgement (tandem replies once a majority has the write).

Raw RESP over asyncio streams (no client library), spread over --procs processes.
Prints one line: "ops/s <n> p50_ms <x> p99_ms <y> errors <e> short <s> stuck <c>",
latencies per batch (send of the first SET to the last reply); "stuck" counts
connections whose batch was still unanswered 5 s after the end (then abandoned).

  python3 bench/wait_load.py --port 6379 --pipeline 16 --wait 2 --duration 10
"""
import argparse
import asyncio
import multiprocessing as mp
import random
import time

GRACE = 5.0


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def parse(buf, pos):
    """One RESP reply from buf[pos:]: (reply, next pos), or None while incomplete.
    Errors come back as Exception instances, arrays as lists."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    kind, line, nxt = buf[pos:pos + 1], bytes(buf[pos + 1:end]), end + 2
    if kind == b"+":
        return line, nxt
    if kind == b"-":
        return Exception(line.decode(errors="replace")), nxt
    if kind == b":":
        return int(line), nxt
    if kind == b"$":
        n = int(line)
        if n < 0:
            return None, nxt
        if len(buf) < nxt + n + 2:
            return None
        return bytes(buf[nxt:nxt + n]), nxt + n + 2
    if kind == b"*":
        items = []
        for _ in range(max(int(line), 0)):
            r = parse(buf, nxt)
            if r is None:
                return None
            items.append(r[0])
            nxt = r[1]
        return items, nxt
    raise ValueError(f"unexpected RESP type {kind!r}")


async def connection(args, seed, start_at, deadline, stats):
    reader, writer = await asyncio.open_connection(args.host, args.port)
    rnd = random.Random(seed)
    value = b"v" * args.value_size
    wait = encode(b"WAIT", str(args.wait).encode(), b"0") if args.wait else b""
    # Batches made before the clock starts (the client's time goes to the sockets):
    # 512 per connection, 512 x PIPELINE random keys.
    batches = [b"".join(encode(b"SET", b"key:%012d" % rnd.randrange(args.keyspace), value) for _ in range(args.pipeline)) + wait
               for _ in range(512)]
    expect = args.pipeline + (1 if args.wait else 0)
    buf = bytearray()
    lat = stats["lat"]
    while time.monotonic() < start_at:
        await asyncio.sleep(start_at - time.monotonic())
    while time.monotonic() < deadline:
        batch = batches[rnd.randrange(512)]
        t = time.monotonic()
        writer.write(batch)
        got, pos, ok = 0, 0, True
        while got < expect:
            if buf.startswith(b"+OK\r\n", pos):  # the usual reply, without the general parser
                pos += 5
                got += 1
                continue
            r = parse(buf, pos)
            if r is None:
                del buf[:pos]
                pos = 0
                data = await reader.read(1 << 16)
                if not data:
                    raise ConnectionError("server closed the connection")
                buf += data
                continue
            reply, pos = r
            got += 1
            if isinstance(reply, Exception):
                stats["errors"] += 1
                ok = False
            elif args.wait and got == expect and reply < args.wait:
                stats["short"] += 1
                ok = False
        del buf[:pos]
        if ok:
            stats["acked"] += args.pipeline
            lat.append(time.monotonic() - t)
    writer.close()


def worker(args, first, count, start_at, out):
    stats = {"acked": 0, "errors": 0, "short": 0, "stuck": 0, "lat": []}
    deadline = start_at + args.duration

    async def run():
        # A batch still unanswered GRACE seconds after the deadline (a WAIT that can
        # never be met, a server that stopped answering) is abandoned and reported.
        tasks = [asyncio.create_task(connection(args, first + i, start_at, deadline, stats)) for i in range(count)]
        done, pending = await asyncio.wait(tasks, timeout=deadline + GRACE - time.monotonic())
        for t in pending:
            t.cancel()
        stats["stuck"] = len(pending)
        for t in done:
            t.result()  # a connection that failed fails the run

    try:
        asyncio.run(run())
    except Exception as e:  # reported by the parent, which would otherwise wait forever
        out.put((None, f"{type(e).__name__}: {e}"))
        return
    out.put((stats, time.monotonic()))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--pipeline", type=int, default=1)
    p.add_argument("--wait", type=int, default=0, help="replicas each batch's WAIT must reach (0: no WAIT)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds")
    p.add_argument("--value-size", type=int, default=64)
    p.add_argument("--keyspace", type=int, default=100000)
    p.add_argument("--procs", type=int, default=1, help="client processes sharing the connections")
    args = p.parse_args()

    out = mp.Queue()
    start_at = time.monotonic() + 0.5  # every process connected before the clock starts
    procs, first = [], 0
    for i in range(args.procs):
        n = args.clients // args.procs + (1 if i < args.clients % args.procs else 0)
        procs.append(mp.Process(target=worker, args=(args, first, n, start_at, out)))
        first += n
    for pr in procs:
        pr.start()
    results = [out.get() for _ in procs]
    for pr in procs:
        pr.join()
    failed = [msg for s, msg in results if s is None]
    if failed or any(pr.exitcode for pr in procs):
        raise SystemExit(f"wait_load: a client process failed: {failed[0] if failed else 'exit code'}")
    acked = sum(s["acked"] for s, _ in results)
    errors = sum(s["errors"] for s, _ in results)
    short = sum(s["short"] for s, _ in results)
    stuck = sum(s["stuck"] for s, _ in results)
    lat = sorted(x for s, _ in results for x in s["lat"])
    elapsed = max(t for _, t in results) - start_at
    pct = lambda q: lat[int(q * (len(lat) - 1))] * 1000 if lat else 0.0
    print(f"ops/s {acked / elapsed:.0f} p50_ms {pct(0.5):.2f} p99_ms {pct(0.99):.2f} errors {errors} short {short} stuck {stuck}")


if __name__ == "__main__":
    main()
