#!/usr/bin/env bash
# The LAN over a simulated gigabit link: two network namespaces joined by a veth pair,
# each end limited to 1 Gbit/s (tc netem rate 1gbit, or tc tbf where the kernel has no
# netem), socat and ddferry alternating over the same link, the same bytes.
#
#   sudo scripts/bench/gigabit.sh [SIZE_MIB=512] [ROUNDS=3]
#
# Needs root, ip and tc (iproute2), socat, cmp, bc; build first (npx tsc -b). Prints one
# line per round and the medians; the issue's goal is >= 110 MB/s for ddferry.
set -euo pipefail
SIZE_MIB=${1:-512}
ROUNDS=${2:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
READER="$ROOT/packages/reader/bin/ddferry-reader.js"
ASSEMBLER="$ROOT/packages/assembler/bin/ddferry-assembler.js"
for t in ip tc socat cmp bc; do command -v $t >/dev/null || { echo "gigabit.sh: $t is missing (apt-get install -y iproute2 socat diffutils bc)" >&2; exit 2; }; done
[ "$(id -u)" = 0 ] || { echo 'gigabit.sh: needs root (network namespaces)' >&2; exit 2; }
[ -f "$READER" ] || { echo "gigabit.sh: $READER is missing: build first (npx tsc -b)" >&2; exit 2; }

A=ddf-bench-a-$$
B=ddf-bench-b-$$
DIR=$(mktemp -d "${TMPDIR:-/tmp}/ddferry-gigabit-XXXXXX")
cleanup() {
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

ip netns add "$A"
ip netns add "$B"
ip link add "va$$" type veth peer name "vb$$"
ip link set "va$$" netns "$A"
ip link set "vb$$" netns "$B"
ip -n "$A" addr add 10.99.0.1/24 dev "va$$"
ip -n "$B" addr add 10.99.0.2/24 dev "vb$$"
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set "va$$" up
ip -n "$B" link set "vb$$" up
QDISC="netem rate 1gbit"
if ! ip netns exec "$A" tc qdisc add dev "va$$" root netem rate 1gbit 2>/dev/null; then
  QDISC="tbf rate 1gbit burst 512kb latency 20ms (this kernel has no netem)"
  ip netns exec "$A" tc qdisc add dev "va$$" root tbf rate 1gbit burst 512kb latency 20ms
  ip netns exec "$B" tc qdisc add dev "vb$$" root tbf rate 1gbit burst 512kb latency 20ms
else
  ip netns exec "$B" tc qdisc add dev "vb$$" root netem rate 1gbit
fi

SRC="$DIR/source"
head -c $((SIZE_MIB * 1048576)) /dev/urandom > "$SRC"
sync "$SRC"
SIZE=$(stat -c %s "$SRC")
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/token"
echo >> "$DIR/token"
chmod 600 "$DIR/token"
now() { date +%s.%N; }
rate() { echo "scale=1; $SIZE / ($1) / 1000000" | bc; }

socat_round() {
  rm -f "$DIR/socat.out"
  ip netns exec "$B" socat -u TCP-LISTEN:7001,bind=10.99.0.2,reuseaddr "OPEN:$DIR/socat.out,creat,trunc" &
  local rx=$!
  sleep 0.3
  local t0; t0=$(now)
  ip netns exec "$A" socat -u "OPEN:$SRC,rdonly" TCP:10.99.0.2:7001
  wait $rx
  sync "$DIR/socat.out"
  local t1; t1=$(now)
  cmp -s "$SRC" "$DIR/socat.out" || { echo 'gigabit.sh: socat: the copy differs from the source' >&2; exit 1; }
  echo "$t1 - $t0" | bc
}

ddferry_round() {
  local job="$DIR/job" image="$DIR/image.raw"
  rm -rf "$job" "$image"*
  node "$READER" plan "$SRC" "$job" --chunk-size 1GiB >/dev/null
  ip netns exec "$B" node "$ASSEMBLER" serve "$image" --listen 10.99.0.2:7002 --token-file "$DIR/token" > "$DIR/asm.out" 2>&1 &
  local asm=$!
  for _ in $(seq 200); do grep -q listening "$DIR/asm.out" 2>/dev/null && break; sleep 0.05; done
  local t0; t0=$(now)
  ip netns exec "$A" node "$READER" rescue "$job" --to ws://10.99.0.2:7002 --token-file "$DIR/token" -q 2>"$DIR/reader.err" \
    || { echo "gigabit.sh: ddferry-reader failed: $(tail -3 "$DIR/reader.err")" >&2; exit 1; }
  local t1; t1=$(now)
  kill -INT $asm
  wait $asm || true
  cmp -s "$SRC" "$image" || { echo 'gigabit.sh: ddferry: the image differs from the source' >&2; exit 1; }
  echo "$t1 - $t0" | bc
}

echo "gigabit link: $SIZE_MIB MiB of random data, $ROUNDS round(s), $QDISC; commit $(git -C "$ROOT" rev-parse --short HEAD)"
S=()
F=()
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then s=$(socat_round); f=$(ddferry_round); else f=$(ddferry_round); s=$(socat_round); fi
  S+=("$s")
  F+=("$f")
  printf 'round %d: socat %.2f s (%s MB/s), ddferry %.2f s (%s MB/s)\n' "$r" "$s" "$(rate "$s")" "$f" "$(rate "$f")"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
ms=$(median "${S[@]}")
mf=$(median "${F[@]}")
printf '| gigabit link, %d MiB | socat %.2f s (%s MB/s) | ddferry %.2f s (%s MB/s) | %.2fx | goal >= 110 MB/s |\n' \
  "$SIZE_MIB" "$ms" "$(rate "$ms")" "$mf" "$(rate "$mf")" "$(echo "$mf / $ms" | bc -l)"
