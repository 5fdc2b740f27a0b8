#!/usr/bin/env python3
"""Writes N SET commands (keys key:0000000000…, 100-byte values) as raw RESP for
`redis-cli --pipe`: the same data set for tandem and Redis in every benchmark."""
import sys

n = int(sys.argv[1])
value = b"v" * 100
out = sys.stdout.buffer
for i in range(n):
    key = b"key:%010d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n" % (len(key), key, value))
