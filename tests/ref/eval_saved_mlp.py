#!/usr/bin/python3
"""Evaluate a model saved by `fashion_mlp --save FILE` in PyTorch, from the file alone: the
layers, the activation and the input scaling come from its metadata. Prints the test accuracy.

    /usr/bin/python3 tests/ref/eval_saved_mlp.py FILE [DATA_DIR]

DATA_DIR holds t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz) (default: Debian's
dataset-fashion-mnist). Needs python3-torch and python3-numpy (or only torch)."""
import gzip
import json
import os
import struct
import sys

import torch
import torch.nn.functional as F


def read_safetensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    body = data[8 + n:]
    dtypes = {"F32": torch.float32, "F64": torch.float64}
    tensors = {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        t = torch.frombuffer(bytearray(body[a:b]), dtype=dtypes[h["dtype"]])
        tensors[name] = t.reshape(h["shape"])
    return meta, tensors


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def find(d, name):
    for p in (os.path.join(d, name), os.path.join(d, name + ".gz")):
        if os.path.exists(p):
            return p
    sys.exit(f"eval_saved_mlp.py: {name} not found in {d}")


def main():
    path = sys.argv[1]
    data_dir = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist"
    meta, w = read_safetensors(path)
    layers = [int(v) for v in meta["layers"].split(",")]
    act = {"relu": F.relu, "tanh": torch.tanh, "gelu": F.gelu, "sigmoid": torch.sigmoid,
           "softplus": F.softplus, "leaky_relu": lambda x: F.leaky_relu(x, 0.01)}[meta["activation"]]
    mean, std = float(meta["input_mean"]), float(meta["input_std"])
    x = read_idx(find(data_dir, "t10k-images-idx3-ubyte")).reshape(-1, 784).float() / 255.0
    y = read_idx(find(data_dir, "t10k-labels-idx1-ubyte")).long()
    h = (x - mean) / std
    for i in range(len(layers) - 1):
        h = F.linear(h, w[f"fc{i + 1}.weight"].float(), w[f"fc{i + 1}.bias"].float())
        if i < len(layers) - 2:
            h = act(h)
    acc = (h.argmax(1) == y).float().mean().item()
    print(f"layers {meta['layers']}, activation {meta['activation']}, mean {mean:.6g}, std {std:.6g}: "
          f"test_accuracy={acc:.4f}")


if __name__ == "__main__":
    main()
