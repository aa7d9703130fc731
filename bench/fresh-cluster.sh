# Sourced by the bench scripts, with $herald (a binary, or empty for the repository's release
# build, built here when missing), $base and $nodes set: starts a fresh `herald dev` cluster of
# $nodes nodes (ten CMPP links to one simulator, window 64, at most 2,000/s each) on ports from
# $base, stops it when the script exits, and returns once `herald dev` says it is up (every node
# names the same leader).
# Sets and exports HERALD_CA (the cluster's CA, for `herald bench` and the other client commands).
# $HERALD_DEV_ARGS, when set, is passed to `herald dev` as well (e.g. `--insecure`: no TLS and no
# keys, the "off" side of BENCHMARKS.md's security cost).
# Sets $dir (the cluster's folder), $pids (the nodes' process ids) and $endpoints (one --endpoint
# per node, for `herald bench`), and exports HERALD_API_KEY (the demo sender's key).
#
# Waiting for that matters for latency figures: at a cold start the first election takes an
# election timeout (1.5–3 s), and calls made meanwhile wait for it.
# shellcheck shell=bash
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "$herald" ]; then
  herald=$root/target/release/herald
  if [ ! -x "$herald" ]; then
    echo "$herald is missing: building it (cargo build --release --bin herald; minutes the first time)" >&2
    (cd "$root" && cargo build --release --bin herald) || exit 1
  fi
elif [ ! -x "$herald" ]; then
  echo "$herald is missing or not executable: build it (cargo build --release --bin herald) or name another binary" >&2
  exit 1
fi
work=$(mktemp -d /tmp/herald-runs.XXXXXX)
dir=$work/cluster # a new folder; dev's output goes beside it
# shellcheck disable=SC2086 # HERALD_DEV_ARGS is split into words on purpose
"$herald" dev --dir "$dir" --port-base "$base" --nodes "$nodes" --links 10 --link-window 64 \
  --link-rate 2000 ${HERALD_DEV_ARGS:-} >"$work/dev.out" 2>&1 </dev/null &
dev=$!
trap 'kill $dev 2>/dev/null; wait $dev 2>/dev/null || true' EXIT

# `herald dev` says the cluster is up once every node names the same leader; one that refuses to
# start (a port in use, a folder in use) exits at once, and so does this script, saying why.
for _ in $(seq 200); do
  grep -q "cluster is up\|did not agree" "$work/dev.out" 2>/dev/null && break
  kill -0 "$dev" 2>/dev/null || break
  sleep 0.2
done
grep -q "cluster is up" "$work/dev.out" || {
  echo "the cluster in $dir did not come up; herald dev printed:" >&2
  cat "$work/dev.out" >&2
  echo "(the nodes' logs are in $dir)" >&2
  exit 1
}
pids=$(python3 -c "import json,sys; print(' '.join(str(n['pid']) for n in json.load(open(sys.argv[1]))['nodes']))" "$dir/cluster.json")
case " $pids " in *" None "*)
  echo "a node of the cluster in $dir has stopped already (cluster.json: $pids); see its log there" >&2
  exit 1 ;;
esac
# The cluster is secure (herald dev's default): the client commands verify it with its CA.
HERALD_CA=$(python3 -c "import json,sys; t=json.load(open(sys.argv[1]))['tls']; print(t['ca'] if t else '')" "$dir/cluster.json")
if [ -n "$HERALD_CA" ]; then export HERALD_CA; else unset HERALD_CA; fi
endpoints=""
for node in $(seq "$nodes"); do endpoints+=" --endpoint 127.0.0.1:$((base + node))"; done
# The bench calls as `herald dev`'s demo sender (empty for an insecure cluster).
HERALD_API_KEY=$(python3 -c "import json,sys; c=json.load(open(sys.argv[1])).get('credentials') or {}; print(c.get('demo') or '')" "$dir/cluster.json")
export HERALD_API_KEY
