#!/usr/bin/env python3
"""Print the records of a cdb file in file order, one per line: key and value as Python byte literals."""
import struct
import sys

data = open(sys.argv[1], "rb").read()
end = min(struct.unpack("<I", data[i:i + 4])[0] for i in range(0, 2048, 8))
pos = 2048
while pos < end:
    klen, dlen = struct.unpack("<II", data[pos:pos + 8])
    key = data[pos + 8:pos + 8 + klen]
    val = data[pos + 8 + klen:pos + 8 + klen + dlen]
    print(repr(key), repr(val))
    pos += 8 + klen + dlen
