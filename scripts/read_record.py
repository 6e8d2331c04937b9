#!/usr/bin/env python3
"""Reads a resq record (MCAP) as Foxglove does, with no resq code: the tick messages are
decoded from the protobuf schema stored in the file (mcap + mcap-protobuf-support).

Prints one JSON object per line: first the `/resq/meta` message, then one per `/resq/tick`
message, `{"log_time": ns, ...fields by their schema names}` (proto3 leaves zero values out;
enum values print as their names, i.e. the action labels; non-finite floats as "NaN",
"Infinity", "-Infinity").

    python3 scripts/read_record.py runs/cartpole-link/record.mcap | head
    python3 scripts/read_record.py --size runs/cartpole-link/record.mcap   # bytes per tick
    python3 scripts/read_record.py --latency runs/cartpole-link/record.mcap   # latency percentiles

Needs `pip install mcap mcap-protobuf-support` (scripts/test.sh's venv has them).
"""
import argparse
import json
import math
import os
import sys

from google.protobuf.json_format import MessageToDict
from mcap.reader import make_reader
from mcap_protobuf.decoder import DecoderFactory


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("record")
    p.add_argument("--size", action="store_true", help="print only the file's bytes per tick message")
    p.add_argument("--latency", action="store_true",
                   help="print only nearest-rank percentiles of latency_ns (frame received -> command written), us")
    a = p.parse_args()
    with open(a.record, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        if a.size:
            ticks = sum(1 for _ in reader.iter_messages(topics=["/resq/tick"]))
            size = os.path.getsize(a.record)
            print(json.dumps({"bytes": size, "ticks": ticks, "bytes_per_tick": size / max(ticks, 1)}))
            return
        if a.latency:
            lat = sorted(t.latency_ns for _, _, _, t in reader.iter_decoded_messages(topics=["/resq/tick"]))
            rank = lambda p: lat[max(0, math.ceil(p * len(lat) / 100) - 1)] / 1000.0  # noqa: E731
            print(json.dumps({"ticks": len(lat), "p50_us": rank(50), "p99_us": rank(99), "p99_9_us": rank(99.9),
                              "max_us": lat[-1] / 1000.0}))
            return
        for _, _, message in reader.iter_messages(topics=["/resq/meta"]):
            print(json.dumps(json.loads(message.data)))
        out = sys.stdout
        for _, _, message, tick in reader.iter_decoded_messages(topics=["/resq/tick"]):
            d = MessageToDict(tick, preserving_proto_field_name=True)
            d["log_time"] = message.log_time
            out.write(json.dumps(d) + "\n")


if __name__ == "__main__":
    main()
