#!/usr/bin/env bash
# Smoke test of the IKE load generator (bench/ike/ike_loadgen.cc) against
# cygnet-ike in two network namespaces it makes and deletes: 50 set-ups on
# UDP 500, then 50 with NAT-T (the responder's connection for the second
# source address has force_encap, so IKE_AUTH and the Delete go over 4500).
# Every set-up must complete: verified AUTH, a Child SA, an answered Delete;
# cygnet-ike's counters must agree (100 IKE SAs, 100 Child SAs installed and
# removed, nothing dropped) and it must exit 0 on SIGTERM. It tests the
# generator and the daemon, not their speed.
#
#   bench/ike/smoke_test.sh BUILD_DIR
# Needs root (namespaces); exits 77 (skipped) otherwise.
set -uo pipefail
build=$(cd "${1:?usage: smoke_test.sh BUILD_DIR}" && pwd) || exit 1
ike=$build/cp/ike/daemon/cygnet-ike
ctl=$build/cp/cygnetctl
gen=$build/bench/ike/ike_loadgen
[ "$(id -u)" = 0 ] || { echo "skip: needs root"; exit 77; }
for x in "$ike" "$ctl" "$gen"; do [ -x "$x" ] || { echo "missing $x"; exit 1; }; done

id=$$
na=cyg-lg-$id-a nb=cyg-lg-$id-b
dir=$(mktemp -d /tmp/cygnet-loadgen-smoke.XXXXXX)
ike_pid=""
fails=0
ok() { echo "ok - $*"; }
bad() { echo "not ok - $*"; fails=$((fails + 1)); }
cleanup() {
  if [ -n "$ike_pid" ]; then kill -TERM "$ike_pid" 2>/dev/null; wait "$ike_pid" 2>/dev/null; fi
  ip netns del "$na" 2>/dev/null
  ip netns del "$nb" 2>/dev/null
  if [ "$fails" -ne 0 ]; then
    for f in "$dir"/*.out "$dir"/*.err; do [ -s "$f" ] && { echo "--- $f"; tail -40 "$f"; }; done
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

ip netns add "$na" && ip netns add "$nb" || exit 1
ip link add "lga$id" type veth peer name "lgb$id" || exit 1
ip link set "lga$id" netns "$na" && ip link set "lgb$id" netns "$nb" || exit 1
ip -n "$na" addr add 192.0.2.1/24 dev "lga$id"
ip -n "$na" addr add 192.0.2.3/24 dev "lga$id"
ip -n "$nb" addr add 192.0.2.2/24 dev "lgb$id"
for n in "$na" "$nb"; do ip -n "$n" link set lo up; done
ip -n "$na" link set "lga$id" up && ip -n "$nb" link set "lgb$id" up || exit 1

psk=smoke-test-pre-shared-key-0123456789
printf 'psks = ( { name = "lg"; secret = "%s"; } );\n' "$psk" > "$dir/secrets.conf"
printf '%s\n' "$psk" > "$dir/psk"
chmod 600 "$dir/secrets.conf" "$dir/psk"
cat > "$dir/ike.conf" <<CONF
ike = { secrets = "secrets.conf"; dataplane_instance = "lg$id"; cookie_threshold = 100000; };
connections = (
  { name = "plain"; local_addr = "192.0.2.2"; remote_addrs = "192.0.2.1";
    local_id = "fqdn:responder.test"; remote_id = "fqdn:loadgen.test"; psk = "lg";
    ike = ( "aes256gcm16-prfsha256-x25519" ); esp = ( "aes256gcm16" );
    local_ts = ( "10.2.0.0/16" ); remote_ts = ( "10.1.0.0/16" ); },
  { name = "natt"; local_addr = "192.0.2.2"; remote_addrs = "192.0.2.3";
    local_id = "fqdn:responder.test"; remote_id = "fqdn:loadgen.test"; psk = "lg";
    ike = ( "aes256gcm16-prfsha256-x25519" ); esp = ( "aes256gcm16" );
    local_ts = ( "10.2.0.0/16" ); remote_ts = ( "10.1.0.0/16" ); force_encap = true; }
);
CONF
cd "$dir" || exit 1
ip netns exec "$nb" "$ike" -c "$dir/ike.conf" --backend log --control "$dir/ike.sock" >"$dir/ike.out" 2>"$dir/ike.err" &
ike_pid=$!
for _ in $(seq 50); do [ -S "$dir/ike.sock" ] && break; sleep 0.1; done
[ -S "$dir/ike.sock" ] || { bad "cygnet-ike started"; exit 1; }

run_gen() {  # LOCAL LABEL
  ip netns exec "$na" "$gen" --local "$1" --remote 192.0.2.2 --psk-file "$dir/psk" \
    --id fqdn:loadgen.test --remote-id fqdn:responder.test --tsi 10.1.0.0/24 --tsr 10.2.0.0/24 \
    --count 50 -n 8 --duration 20 --timeout-ms 5000 --quiet >"$dir/gen-$2.out" 2>"$dir/gen-$2.err"
}
for pass in "192.0.2.1 plain" "192.0.2.3 natt"; do
  read -r addr label <<<"$pass"
  if run_gen "$addr" "$label" && grep -q '^RESULT setups=50 .* failures=0 timeouts=0 .* deletes_acked=50 ' "$dir/gen-$label.out"; then
    ok "$label: 50 set-ups, AUTH verified, Child SA, Delete answered"
  else
    bad "$label: $(cat "$dir/gen-$label.out" "$dir/gen-$label.err" | head -5)"
  fi
done

stats=$("$ctl" ike stats --control "$dir/ike.sock")
val() { awk -v k="$1" '$1 == k { print $2 }' <<<"$stats"; }
[ "$(val ike_established)" = 100 ] && ok "cygnet-ike: 100 IKE SAs established" || bad "ike_established $(val ike_established)"
[ "$(val child_installed)" = 100 ] && [ "$(val child_removed)" = 100 ] &&
  ok "cygnet-ike: 100 Child SAs installed and removed" || bad "child_installed $(val child_installed) removed $(val child_removed)"
[ "$(val dropped)" = 0 ] && [ "$(val auth_failed)" = 0 ] && ok "cygnet-ike: nothing dropped, no AUTH failure" ||
  bad "dropped $(val dropped) auth_failed $(val auth_failed)"
n_encap=$(grep -c 'child-sa install conn=natt .*encap=yes' "$dir/ike.out")
[ "$n_encap" = 50 ] && ok "natt: the 50 Child SAs are UDP-encapsulated" || bad "natt: $n_encap encapsulated Child SAs"
[ -z "$("$ctl" ike list --control "$dir/ike.sock" | grep -v '^$')" ] && ok "cygnet-ike: no IKE SA left" || bad "IKE SAs left"

kill -TERM "$ike_pid"
wait "$ike_pid"
rc=$?
ike_pid=""
[ "$rc" = 0 ] && ok "cygnet-ike exits 0 on SIGTERM" || bad "cygnet-ike exit status $rc"
[ "$fails" = 0 ] && echo "all passed" || echo "$fails failed"
[ "$fails" = 0 ]
