#!/usr/bin/env bash
# The same robot at 50 Hz over the serial link and over ROS 2, in one run: MuJoCo Reacher-v5
# served in real time by the reference firmware (a pseudo-terminal) and by the reference ROS 2
# robot (Zenoh, through a router on loopback), each customized by `resq run --mode realtime` with
# learning on its thread. Prints, per transport, the deadline misses and late steps resq recorded,
# resq's own signal-to-command latency (`resq inspect`: from the tick's arrival to the command
# handed to the transport) and the robot's round trip (its state sent to the command received).
#
#   scripts/ros2_latency.sh [STEPS=20000] [OUT=/tmp/resq-ros2-latency]
#
# Needs `pip install './reference-firmware[ros2]'` (resq-firmware, resq-ros2-robot and
# resq-zenoh-router on PATH) and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${1:-20000}"
OUT="${2:-/tmp/resq-ros2-latency}"
RESQ="${CARGO_TARGET_DIR:-target}/release/resq"
rm -rf "$OUT" && mkdir -p "$OUT"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT

summary() {  # $1 transport, $2 record, $3 robot log
    "$RESQ" inspect "$2" --json > "$OUT/$1.inspect.json"
    python3 - "$1" "$OUT/$1.inspect.json" "$3" <<'PY'
import json, re, sys
name, path, log = sys.argv[1:]
s = json.load(open(path))
lat = s["latency"]
trip = re.findall(r"round_trip_ms\([^)]*\)", open(log).read())
print(f"{name:7s} ticks {s['ticks']}  {s['tick_rate_hz']:.1f} Hz  deadline misses {s['deadline_misses']}  "
      f"late steps {s['late_steps']}  resq latency us p50 {lat['p50_us']:.0f} p99 {lat['p99_us']:.0f} max {lat['max_us']:.0f}  "
      f"robot {trip[-1] if trip else 'round trip not logged'}")
PY
}

# Serial: the reference firmware on a pseudo-terminal at 50 Hz.
resq-firmware --env Reacher-v5 --signals cos1,cos2,sin1,sin2,target_x,target_y,vel1,vel2,dx,dy \
    --commands tau1,tau2 --port pty --link "$OUT/tty" --mode realtime --rate 50 --seed 0 \
    > "$OUT/firmware.log" 2>&1 &
FW=$!; PIDS+=($FW)
while [ ! -e "$OUT/tty" ]; do sleep 0.1; done
"$RESQ" run models/reacher --port "$OUT/tty" --mode realtime --steps "$STEPS" --episodes 10 --seed 0 \
    --set learning.thread=true --out "$OUT/serial" --quiet > "$OUT/serial.log" 2>&1
kill -TERM $FW; wait $FW || true

# ROS 2: a router and the reference ROS 2 robot at 50 Hz.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
resq-zenoh-router --listen "tcp/127.0.0.1:$PORT" > "$OUT/router.log" 2>&1 &
PIDS+=($!)
sleep 1
resq-ros2-robot --env Reacher-v5 --router "tcp/127.0.0.1:$PORT" --rate 50 --seed 0 --ready "$OUT/ready" \
    > "$OUT/robot.log" 2>&1 &
ROBOT=$!; PIDS+=($ROBOT)
while [ ! -e "$OUT/ready" ]; do sleep 0.1; done
"$RESQ" run models/reacher-ros2 --router "tcp/127.0.0.1:$PORT" --mode realtime --steps "$STEPS" --episodes 10 \
    --seed 0 --set learning.thread=true --out "$OUT/ros2" --quiet > "$OUT/ros2.log" 2>&1
kill -TERM $ROBOT; wait $ROBOT || true

echo "$STEPS steps at 50 Hz, learning on its thread ($(date -u +%F), $(git rev-parse --short HEAD))"
summary serial "$OUT/serial/record.mcap" "$OUT/firmware.log"
summary ros2 "$OUT/ros2/record.mcap" "$OUT/robot.log"
grep -h "ROS 2: " "$OUT/ros2.log" | sed 's/^.*ROS 2: /ros2 wire: /' || true
