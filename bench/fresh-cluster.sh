# Sourced by the bench scripts: starts a fresh `herald dev` cluster of $nodes nodes (ten CMPP
# links to one simulator, window 64, at most 2,000/s each) on ports from $base, stops it when the
# script exits, and returns once every node names the same leader. Sets $dir, $pids (the nodes'
# process ids) and $endpoints (one --endpoint per node, for `herald bench`).
#
# Waiting for an agreed leader matters for latency figures: a node that starts before its peers
# listen loses its first vote requests and waits out an election timeout (1.5–3 s), and calls
# made meanwhile wait for it.
# shellcheck shell=bash
dir=$(mktemp -d /tmp/herald-runs.XXXXXX)
"$herald" dev --dir "$dir" --fresh --port-base "$base" --nodes "$nodes" --links 10 --link-window 64 \
  --link-rate 2000 >"$dir/dev.out" 2>&1 </dev/null &
dev=$!
trap 'kill $dev 2>/dev/null; wait $dev 2>/dev/null || true' EXIT

# Each node's view of the leader, one line per node ("leader unknown" prints nothing).
leaders() {
  local node
  for node in $(seq "$nodes"); do
    "$herald" cluster status --endpoint "127.0.0.1:$((base + node))" 2>/dev/null |
      sed -n '1s/.*, leader \([0-9][0-9]*\),.*/\1/p'
  done
}
agreed_leader() {
  local seen
  seen=$(leaders)
  [ "$(grep -c . <<<"$seen")" -eq "$nodes" ] && [ "$(sort -u <<<"$seen" | wc -l)" -eq 1 ]
}
for _ in $(seq 150); do
  [ -f "$dir/cluster.json" ] && agreed_leader && break
  sleep 0.2
done
agreed_leader || {
  echo "the cluster in $dir did not agree on a leader within 30 s" >&2
  exit 1
}
pids=$(python3 -c "import json,sys; print(' '.join(str(n['pid']) for n in json.load(open(sys.argv[1]))['nodes']))" "$dir/cluster.json")
endpoints=""
for node in $(seq "$nodes"); do endpoints+=" --endpoint 127.0.0.1:$((base + node))"; done
