#!/usr/bin/env python3
"""Independent safetensors reader/writer for nabla's tests (json + struct only).

  read_safetensors.py read FILE    print a canonical dump of FILE, exit 1 if it is malformed:
                                     checksum ok                   (nabla's CRC-32s, when present)
                                     meta KEY VALUE                (sorted by key)
                                     tensor NAME DTYPE (d0,d1) v0 v1 ...   (in data order;
                                     floats as %.17g, integers as %d)
  read_safetensors.py write FILE   write a small known file for nabla's loader to read
"""
import json
import struct
import sys
import zlib

FMT = {"F32": ("f", 4), "F64": ("d", 8), "I64": ("q", 8)}


def fail(msg):
    print("read_safetensors.py: " + msg, file=sys.stderr)
    sys.exit(1)


def read(path):
    data = open(path, "rb").read()
    if len(data) < 8:
        fail("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        fail("header length beyond the file")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    buf = data[8 + n:]
    meta = header.pop("__metadata__", {})
    crc = meta.pop("nabla.crc32", None)
    if crc is not None:  # header CRC with the digits zeroed, then one CRC per tensor in data order
        prefix = b'{"__metadata__":{"nabla.crc32":"'
        if not data[8:].startswith(prefix):
            fail("checksum not at the start of the header")
        at = 8 + len(prefix)
        zeroed = data[:at] + b"0" * len(crc) + data[at + len(crc):8 + n]
        ends = sorted(e["data_offsets"] for e in header.values())
        want = [zlib.crc32(zeroed)] + [zlib.crc32(data[8 + n + b:8 + n + e]) for b, e in ends]
        if crc != "".join("%08x" % c for c in want):
            fail("checksum mismatch")
        print("checksum ok")
    for k in sorted(meta):
        print("meta %s %s" % (k, meta[k]))
    at = 0
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        fmt, size = FMT[e["dtype"]]
        b, end = e["data_offsets"]
        count = 1
        for d in e["shape"]:
            count *= d
        if b != at or end - b != count * size or end > len(buf):
            fail("bad data_offsets for %s" % name)
        at = end
        vals = struct.unpack("<%d%s" % (count, fmt), buf[b:end])
        out = ["%d" % v if fmt == "q" else "%.17g" % v for v in vals]
        shape = "(" + ",".join(str(d) for d in e["shape"]) + ")"
        print(" ".join(["tensor", name, e["dtype"], shape] + out))
    if at != len(buf):
        fail("data buffer not fully covered")


def write(path):
    tensors = [("w", "F32", [2, 3], [0.5, -1.25, 3.0, 1e-3, 2.0 ** -20, -7.0]),
               ("b", "F64", [3], [0.1, -0.2, 1e300]),
               ("steps", "I64", [], [-(2 ** 40) - 3])]
    header = {"__metadata__": {"format": "pt", "source": "python"}}
    blobs, at = [], 0
    for name, dt, shape, vals in tensors:
        fmt, size = FMT[dt]
        blob = struct.pack("<%d%s" % (len(vals), fmt), *vals)
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [at, at + len(blob)]}
        blobs.append(blob)
        at += len(blob)
    h = json.dumps(header).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("read", "write"):
        fail("usage: read_safetensors.py read|write FILE")
    (read if sys.argv[1] == "read" else write)(sys.argv[2])
