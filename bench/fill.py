#!/usr/bin/env python3
"""Writes N SET commands as raw RESP for `redis-cli --pipe`: keys key:0000000000 ..,
SIZE-byte values (default 1000): python3 bench/fill.py 1000000 1000 | redis-cli --pipe"""
import sys

n = int(sys.argv[1])
size = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
head = b"*3\r\n$3\r\nSET\r\n$14\r\n"
tail = b"\r\n$%d\r\n%s\r\n" % (size, b"v" * size)
out = sys.stdout.buffer
for start in range(0, n, 10000):
    out.write(b"".join(head + b"key:%010d" % i + tail for i in range(start, min(n, start + 10000))))
