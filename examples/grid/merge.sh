#!/usr/bin/env bash
# After every shard of OUTPUT finished: one merged output in OUTPUT/merged.
# Usage: merge.sh OUTPUT COUNT   (fails, naming them, if shards are missing or doubled)
set -euo pipefail
output=$1 count=$2
shards=()
for ((i = 0; i < count; i++)); do shards+=("$output/shard$i"); done
exec sonic-exatrkx merge "${shards[@]}" --output "$output/merged"
