# Sourced by bench/replicated.sh, failover.sh, catchup.sh and locks.sh: one tandem stripe of
# restartable servers (and voters) on 127.0.0.1 (RESTARTABLE=false: servers that keep
# their log and data in memory only). The caller sets:
#   bin        the tandem binary          work     the run's temp directory
#   T_CLIENT, T_GROUP, T_MGMT             arrays of ports, one per member (a voter
#                                         uses the group port after the servers')
# Server states come from `tandem status --config` when the binary has that command,
# else from each server's INFO replication (tandem_state:...); STATES=info|status
# forces one.

port_free() { # as a server binds (SO_REUSEADDR: a previous run's TIME_WAIT connections do not count)
  python3 -c "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()" "$1" 2>/dev/null
}

stripe_config() { # servers voters election-time: writes $work/tandem.toml, sets conf and SERVERS
  SERVERS=$1
  conf="$work/tandem.toml"
  printf '[cluster]\nname = "bench"\nsecret = "bench-secret"\n\n[[stripe]]\nname = "A"\nelection-time = "%s"\n' "$3" >"$conf"
  local i
  for i in $(seq 0 $(($1 - 1))); do
    cat >>"$conf" <<TOML

[[stripe.server]]
name = "server$((i + 1))"
host = "127.0.0.1"
client-port = ${T_CLIENT[$i]}
group-port = ${T_GROUP[$i]}
management-port = ${T_MGMT[$i]}
data = "$work/server$((i + 1))"
data-storage = "4gb"
restartable = ${RESTARTABLE:-true}
TOML
  done
  for i in $(seq 1 "$2"); do
    printf '\n[[stripe.voter]]\nname = "voter%d"\nhost = "127.0.0.1"\ngroup-port = %s\n' "$i" "${T_GROUP[$(($1 + i - 1))]}" >>"$conf"
  done
}

start_member() { # name [pids-array-name]: starts server1.. (tandem server) or voter1.. (tandem voter),
  # stderr to $work/NAME.log, pid to $work/NAME.pid, command line to $work/NAME.cmd
  local kind=server
  [[ $1 == voter* ]] && kind=voter
  local cmd=("$bin" "$kind" --config "$conf" --name "$1")
  printf '%q ' "${cmd[@]}" >"$work/$1.cmd"
  # Started from a subshell that exits at once: not this shell's job, so a kill -9 of
  # it (failover.py's) is not reported on the terminal.
  (RUST_LOG=${RUST_LOG:-warn} "${cmd[@]}" >/dev/null 2>>"$work/$1.log" & echo $! >"$work/$1.pid")
}

stop_pids() { # signal pids...: sends the signal, then waits (up to 10 s) until they are gone
  local sig=$1 p i
  shift
  for p in "$@"; do kill "-$sig" "$p" 2>/dev/null || true; done
  for i in $(seq 1 200); do
    for p in "$@"; do kill -0 "$p" 2>/dev/null && break; done
    kill -0 "$p" 2>/dev/null || return 0
    sleep 0.05
  done
}

stop_members() { # kill -9 every member whose pid is in $work/*.pid
  local f pids=()
  for f in "$work"/*.pid; do [ -e "$f" ] && pids+=("$(cat "$f")"); done
  [ ${#pids[@]} = 0 ] || stop_pids 9 "${pids[@]}"
}

if [ -z "${STATES:-}" ]; then
  if "$bin" status --help >/dev/null 2>&1; then STATES=status; else STATES=info; fi
fi

tandem_states() { # "name state" per server (state empty when it does not answer)
  local i s
  if [ "$STATES" = status ]; then
    # status exits 1 while a stripe has no active (e.g. mid-failover): only its table matters here.
    { "$bin" status --config "$conf" 2>/dev/null || true; } | awk '$3 == "server" {print $2, $4}'
  else
    for i in $(seq 0 $((SERVERS - 1))); do
      s=$(redis-cli -p "${T_CLIENT[$i]}" info replication 2>/dev/null | awk -F: '/^tandem_state:/ {gsub(/\r/, "", $2); print $2}')
      echo "server$((i + 1)) $s"
    done
  fi
}
tandem_state() { tandem_states | awk -v n="$1" '$1 == n {print $2}'; }

stripe_whole() { # one ACTIVE-COORDINATOR, every other server PASSIVE-STANDBY
  tandem_states | awk -v n="$SERVERS" '$2 == "ACTIVE-COORDINATOR" {a++} $2 == "PASSIVE-STANDBY" {p++} END {exit !(a == 1 && p == n - 1)}'
}

wait_whole() { # seconds
  local end=$((SECONDS + $1))
  until stripe_whole; do
    [ $SECONDS -lt $end ] || { echo "stripe not whole after $1 s:" $(tandem_states) >&2; exit 1; }
    sleep 0.1
  done
}

active_server() { tandem_states | awk '$2 == "ACTIVE-COORDINATOR" {print $1}'; }  # e.g. server2
client_port() { echo "${T_CLIENT[$((${1#server} - 1))]}"; }                       # server2 → its client port
