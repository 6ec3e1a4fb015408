#!/usr/bin/env bash
# Loads the engine as an outside client does (bench/WRK.md): wrk -t2 -c64 against, in turn,
# the bare-hyper reference alone (`stepwise-bench hello`), status GETs of one existing task
# on `stepwise serve --simulate`, and durable starts (POST /v1/tasks, the README's try-on).
# RUNS rounds (default 3) of SECONDS_EACH (default 10) seconds each; loopback only. Prints
# req/s, each server's CPU per request (from /proc) and wrk's (from /usr/bin/time).
# Needs: wrk, curl, and `cargo build --release -p stepwise -p stepwise-bench` done first.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
secs=${SECONDS_EACH:-10}
bin=target/release
for exe in "$bin/stepwise" "$bin/stepwise-bench"; do
  [[ -x $exe ]] || { echo "missing $exe: cargo build --release -p stepwise -p stepwise-bench" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# Waits for "<prefix> http://…" in a file; prints the URL.
url_in() {
  for _ in $(seq 1200); do
    line=$(grep -m1 "^$2" "$1" || true)
    [[ -n $line ]] && { echo "${line##* }"; return; }
    sleep 0.05
  done
  echo "no '$2' line in $1" >&2; exit 1
}
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# One wrk run: prints "label req/s server-us/req wrk-us/req".
measure() {
  local label=$1 pid=$2; shift 2
  local before; before=$(ticks "$pid")
  /usr/bin/time -f "%U %S" -o "$work/time" wrk -t2 -c64 -d"${secs}s" "$@" > "$work/wrk"
  local after; after=$(ticks "$pid")
  kill -0 "$pid" || { echo "$label: the server exited" >&2; exit 1; }
  local rps; rps=$(awk '/^Requests\/sec/ { print $2 }' "$work/wrk")
  local errors; errors=$(grep -E "Non-2xx|Socket errors" "$work/wrk" || true)
  awk -v l="$label" -v r="$rps" -v b="$before" -v a="$after" -v hz="$hz" -v s="$secs" \
    -v e="$errors" '{ n = r * s; printf "%-16s %9.0f req/s  server %5.1f us/req  wrk %4.1f us/req %s\n",
      l, r, (a - b) / hz * 1e6 / n, ($1 + $2) * 1e6 / n, e }' "$work/time"
}

"$bin/stepwise-bench" hello --seconds 100000 > "$work/hello.out" &
pids+=($!); hello_pid=$!
hello=$(url_in "$work/hello.out" "bare hyper listening on")

sed -e "s|^data_dir = .*|data_dir = \"$work/data\"|" -e 's|^listen = .*|listen = "127.0.0.1:0"|' \
  config.toml > "$work/config.toml"
STEPWISE_LOG=warn "$bin/stepwise" serve --simulate --config "$work/config.toml" \
  > "$work/serve.out" 2> "$work/serve.log" &
pids+=($!); engine_pid=$!
engine=$(url_in "$work/serve.out" "stepwise listening on")

body='{"workflow":"tryon","params":{"person_image":"https://example.com/me.jpg"},"items":[
 {"garment_image":"https://example.com/shirt.jpg","description":"blue shirt"},
 {"garment_image":"https://example.com/jacket.jpg","description":"denim jacket"},
 {"garment_image":"https://example.com/scarf.jpg","description":"red scarf"}]}'
id=$(curl -sf -X POST "$engine/v1/tasks" -H 'content-type: application/json' -d "$body" \
  | grep -o '"id":"tsk_[0-9a-f]*"' | cut -d'"' -f4)
# Read once it has finished (~8 s), so every round reads the same answer.
for _ in $(seq 600); do
  curl -sf "$engine/v1/tasks/$id" | grep -q '"status":"succeeded"' && break
  sleep 0.1
done
body_lua=${body//$'\n'/}
printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [==[%s]==]\n' \
  "$body_lua" > "$work/start.lua"

echo "wrk -t2 -c64 -d${secs}s, $runs rounds; $(nproc) cores; task $id ($(curl -sf "$engine/v1/tasks/$id" | wc -c) bytes)"
for round in $(seq "$runs"); do
  echo "round $round"
  measure "bare hyper GET" "$hello_pid" "$hello/v1/tasks/$id"
  measure "engine GET" "$engine_pid" "$engine/v1/tasks/$id"
  measure "bare hyper POST" "$hello_pid" -s "$work/start.lua" "$hello/v1/tasks"
  measure "engine start" "$engine_pid" -s "$work/start.lua" "$engine/v1/tasks"
done
