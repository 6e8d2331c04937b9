"""A Zenoh router, as ``ros2 run rmw_zenoh_cpp rmw_zenohd`` runs on a ROS 2 robot: for tests and
simulators on one machine (loopback, multicast scouting off)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="resq-zenoh-router", description=__doc__)
    ap.add_argument("--listen", default="tcp/127.0.0.1:7447", help="the endpoint (default tcp/127.0.0.1:7447)")
    args = ap.parse_args(argv)
    import zenoh

    conf = zenoh.Config()
    conf.insert_json5("mode", '"router"')
    conf.insert_json5("listen/endpoints", json.dumps([args.listen]))
    conf.insert_json5("scouting/multicast/enabled", "false")
    session = zenoh.open(conf)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"resq-zenoh-router: listening on {args.listen} (Zenoh session {session.zid()})", file=sys.stderr, flush=True)
    stop.wait()
    session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
