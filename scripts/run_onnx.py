#!/usr/bin/env python3
"""Runs an ONNX model with onnxruntime on inputs read as JSON from stdin ({"name": [[...], ...]},
float32) and writes its outputs as JSON to stdout ({"name": [...]}). The export test checks
`resq export`'s files with it against resq's own outputs.

    python3 scripts/run_onnx.py policy.onnx < inputs.json
"""
import json
import sys

import numpy as np
import onnxruntime as ort

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
feeds = {k: np.asarray(v, dtype=np.float32) for k, v in json.load(sys.stdin).items()}
names = [o.name for o in session.get_outputs()]
json.dump({n: o.tolist() for n, o in zip(names, session.run(None, feeds))}, sys.stdout)
