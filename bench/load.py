#!/usr/bin/env python3
"""Writes N commands as raw RESP for `redis-cli --pipe`: the same data set for tandem
and Redis in every benchmark.

    load.py N            SET key:0000000000… of 100-byte values
    load.py N hashes     HSET hash:…  with 10 fields (field:0…field:9, 8-byte values)
    load.py N sets       SADD set:…   with 10 members (member:0…member:9)
    load.py N intsets    SADD iset:…  with 10 integer members (1000…1009)
    load.py N lists      RPUSH list:… with 10 elements (element:0…element:9)
    load.py N zsets      ZADD zset:…  with 10 members (member:0…member:9, scores 0…9)
    load.py N volatile   SET vkey:… of 100-byte values with a TTL of a day (PX), as
                         sessions and cache entries are kept
"""
import sys

n = int(sys.argv[1])
kind = sys.argv[2] if len(sys.argv) > 2 else "strings"
out = sys.stdout.buffer


def command(*args):
    out.write(b"*%d\r\n" % len(args))
    for a in args:
        out.write(b"$%d\r\n%s\r\n" % (len(a), a))


# Each kind but strings: its command, its key prefix and the arguments after the key.
KINDS = {
    "hashes": (b"HSET", b"hash", [x for f in range(10) for x in (b"field:%d" % f, b"val-%04d" % f)]),
    "sets": (b"SADD", b"set", [b"member:%d" % m for m in range(10)]),
    "intsets": (b"SADD", b"iset", [b"%d" % (1000 + m) for m in range(10)]),
    "lists": (b"RPUSH", b"list", [b"element:%d" % e for e in range(10)]),
    "zsets": (b"ZADD", b"zset", [x for m in range(10) for x in (b"%d" % m, b"member:%d" % m)]),
    "volatile": (b"SET", b"vkey", [b"v" * 100, b"PX", b"86400000"]),
}


if kind == "strings":
    value = b"v" * 100
    for i in range(n):
        key = b"key:%010d" % i
        out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n" % (len(key), key, value))
elif kind in KINDS:
    name, prefix, args = KINDS[kind]
    for i in range(n):
        command(name, b"%s:%010d" % (prefix, i), *args)
else:
    sys.exit(f"unknown kind {kind!r}: strings, hashes, sets, intsets, lists, zsets or volatile")
