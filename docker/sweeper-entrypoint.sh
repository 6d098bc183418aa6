#!/bin/sh
# The sweeper service's entrypoint: runs `sweeper ARGS`, on a Ray node when the command needs one.
#
# Ray runs a driver only on a node of its cluster, and this container is not one: for
# `sweeper run ... --executor ray` with RAY_ADDRESS set, it first joins the cluster as a node without
# CPUs or GPUs (it trains nothing, it hosts the driver), then runs sweeper, and leaves the cluster when
# sweeper ends.
# Every other command is plain `sweeper ARGS`.
set -u

case " $* " in
  *" --executor ray "* | *" --executor=ray "*) ;;
  *) exec sweeper "$@" ;;
esac
if [ -z "${RAY_ADDRESS:-}" ]; then
  exec sweeper "$@"  # no cluster named: the Ray executor starts a local Ray
fi

log="${TMPDIR:-/tmp}/sweeper-ray-node.$$.log"
node=
leave() {
  [ -n "$node" ] && kill "$node" 2>/dev/null && wait "$node" 2>/dev/null
}
trap 'leave; exit 130' INT TERM

# Join before sweeper starts: its driver needs this node. Ray gives a new node 30 s to register with the
# head, which a busy head can miss; `ray start` then exits, and this tries again (3 tries in all).
tries=0
while :; do
  tries=$((tries + 1))
  ray start --address="$RAY_ADDRESS" --num-cpus=0 --num-gpus=0 --block --disable-usage-stats >"$log" 2>&1 &
  node=$!
  while kill -0 "$node" 2>/dev/null && ! grep -q "Ray runtime started" "$log"; do
    sleep 1
  done
  kill -0 "$node" 2>/dev/null && break
  if [ "$tries" -ge 3 ]; then
    echo "sweeper-entrypoint: this container could not join the Ray cluster at $RAY_ADDRESS ($tries tries):" >&2
    tail -n 20 "$log" >&2
    rm -f "$log"
    exit 1
  fi
  echo "sweeper-entrypoint: joining the Ray cluster at $RAY_ADDRESS failed (try $tries of 3); trying again" >&2
done

# sweeper runs in the background so that this shell (PID 1 of the container) can hand it the signal that
# `docker stop`, Kubernetes or Ctrl-C sends: it then stops with its finished packs stored (exit 143 or 129).
# A background job of sh starts with SIGINT ignored, so Ctrl-C reaches it as SIGTERM.
sweeper "$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' INT TERM
trap 'kill -HUP "$child" 2>/dev/null' HUP
status=0
wait "$child" || status=$?
while kill -0 "$child" 2>/dev/null; do  # wait returned for a signal: wait again for sweeper to end
  status=0
  wait "$child" || status=$?
done
trap - INT TERM HUP
if [ "$status" -ne 0 ] && ! kill -0 "$node" 2>/dev/null; then
  echo "sweeper-entrypoint: this container's Ray node stopped while sweeper ran:" >&2
  tail -n 20 "$log" >&2
fi
leave
rm -f "$log"
exit "$status"
