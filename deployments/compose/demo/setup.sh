#!/bin/sh
# One-shot setup of the demo federation's node directories (deployments/compose/
# demo-federation.yaml): members file with the shared-namespace endpoints, 'bxnode init
# --dev' from the mounted development keys, the demo watchlists.  Runs once per volume.
set -eu
# The mount points of the compose file; the variables let tests run this script outside
# a container.
base=${BXNODE_DEMO_BASE:-/var/lib/bxnode}
keys=${BXNODE_DEMO_KEYS:-/dev-keys}
data=${BXNODE_DEMO_DATA:-/demo-data}
policy=${BXNODE_DEMO_POLICY:-/demo-policy}
if [ -f "$base/.initialised" ]; then
  echo "setup: federation already initialised in $base"
  exit 0
fi
cp -R "$policy" "$base/policies"
python3 - "$keys/members.json" "$base/members.json" <<'PY'
import json
import sys

ports = {"KAZ-BS": 50051, "KGZ-BS": 50052, "UZB-BS": 50053}
with open(sys.argv[1]) as f:
    members = json.load(f)
members["members"] = [m for m in members["members"] if m["node_id"] in ports]
for m in members["members"]:
    m["endpoint"] = f"127.0.0.1:{ports[m['node_id']]}"
with open(sys.argv[2], "w") as out:
    json.dump(members, out, indent=2)
PY
for spec in "KAZ-BS kaz 50051 kaz-watchlist.csv" "KGZ-BS kgz 50052 kgz-watchlist.jsonl" \
            "UZB-BS uzb 50053 uzb-watchlist.csv"; do
  # shellcheck disable=SC2086
  set -- $spec
  bxnode init --node-dir "$base/$2" --node-id "$1" --country "${1%-BS}" --dev \
    --dev-keys "$keys/$2" --listen "0.0.0.0:$3" --endpoint "127.0.0.1:$3" \
    --members "$base/members.json" --policy-dir "$base/policies" \
    --operator "$2-officer-01" --contact "$1 duty desk" > /dev/null
  bxnode watchlist import "$data/$4" --node-dir "$base/$2"
done
touch "$base/.initialised"
echo "setup: KAZ-BS, KGZ-BS and UZB-BS initialised (development keys)"
