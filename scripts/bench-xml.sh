#!/usr/bin/env bash
# Time WeChat XML -> agent frame JSON per message in wxkf (Rust) and in wechatpy (Python) on
# the same corpus, and print both figures and their ratio.
#
# Uses .venv at the repository root (created when missing) with wechatpy from PyPI.
# Environment: CORPUS (default bench/corpus/wechat-messages.xml), ITERATIONS (passes over the
# corpus per round, default 2000), ROUNDS (timed rounds, default 5; the median is reported),
# WECHATPY (the pip requirement, default wechatpy==1.8.18).
set -euo pipefail

cd "$(dirname "$0")/.."
corpus=${CORPUS:-bench/corpus/wechat-messages.xml}
iterations=${ITERATIONS:-2000}
rounds=${ROUNDS:-5}
wechatpy=${WECHATPY:-wechatpy==1.8.18}
python=.venv/bin/python
target_dir=${CARGO_TARGET_DIR:-target}

if [[ ! -x $python ]]; then
    python3 -m venv .venv
fi
if ! "$python" -c 'import wechatpy' 2>/dev/null; then
    "$python" -m pip install --quiet "$wechatpy"
fi
cargo build --release --quiet -p wxkf-bench --bin xml_frame
xml_frame=$target_dir/release/xml_frame

# Both sides must produce the same frames, or the comparison means nothing.
rust_frames=$(mktemp)
python_frames=$(mktemp)
trap 'rm -f "$rust_frames" "$python_frames"' EXIT
"$xml_frame" --dump "$corpus" >"$rust_frames"
"$python" bench/wechatpy_parse.py --dump "$corpus" >"$python_frames"
"$python" - "$rust_frames" "$python_frames" <<'PY'
import json, sys
with open(sys.argv[1]) as rust_file, open(sys.argv[2]) as python_file:
    rust = [json.loads(line) for line in rust_file]
    python = [json.loads(line) for line in python_file]
if len(rust) != len(python):
    sys.exit(f"frame counts differ: wxkf {len(rust)}, wechatpy {len(python)}")
differing = [index for index, (a, b) in enumerate(zip(rust, python)) if a != b]
if differing:
    sys.exit(f"frames differ for corpus messages {differing}")
print(f"both sides render the same {len(rust)} frames")
PY

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $(cut -d' ' -f1-3 /proc/loadavg)"
rust_output=$("$xml_frame" --iterations "$iterations" --rounds "$rounds" "$corpus")
echo "$rust_output"
python_output=$("$python" bench/wechatpy_parse.py --iterations "$iterations" --rounds "$rounds" "$corpus")
echo "$python_output"

rust_ns=$(awk '/^median:/ { print $2 }' <<<"$rust_output")
python_ns=$(awk '/^median:/ { print $2 }' <<<"$python_output")
rust_best=$(awk '/^best round:/ { print $3 }' <<<"$rust_output")
python_best=$(awk '/^best round:/ { print $3 }' <<<"$python_output")
awk -v rust="$rust_ns" -v python="$python_ns" -v rust_best="$rust_best" -v python_best="$python_best" 'BEGIN {
    printf "ratio of medians: wxkf is %.1fx faster than wechatpy per message (%s ns vs %s ns)\n", python / rust, rust, python
    printf "ratio of best rounds: %.1fx (%s ns vs %s ns)\n", python_best / rust_best, rust_best, python_best
}'
