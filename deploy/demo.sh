#!/bin/sh
# demo.sh: three users chat through a local secchat broker.
#
# Run by `make demo` from the repository root once bin/ is built. It
# makes throw-away keys for alice, bob and carol, starts bin/secbroker on
# a free local port and drives three bin/secchat clients in batch mode,
# one command at a time, waiting for each expected answer, and shows
# what every user sees. It ends with what the broker logged. It exits
# non-zero if anything did not happen as scripted, and cleans up (also
# on Ctrl-C).
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

set -u

BIN=${SC_BIN_DIR:-bin}
BIN=${BIN%/}
WAIT=10                 # seconds to wait for any expected line

tmp=""
broker_pid=""
pid_alice="" pid_bob="" pid_carol=""

cleanup() {
	exec 3>&- 4>&- 5>&- 2>/dev/null
	for pid in $pid_alice $pid_bob $pid_carol $broker_pid; do
		kill "$pid" 2>/dev/null
	done
	wait 2>/dev/null
	[ -n "$tmp" ] && rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo; echo "demo interrupted"; exit 130' INT
trap 'exit 143' TERM

# Prints why the demo failed and what the programs said, then exits 1.
die() {
	echo
	echo "DEMO FAILED: $*"
	for f in "$tmp"/*.log; do
		[ -s "$f" ] || continue
		echo "--- ${f##*/} (last lines)"
		tail -n 15 "$f"
	done
	exit 1
}

narrate() {
	echo
	echo "-- $*"
}

# nap: a tenth of a second where sleep takes fractions, else a second.
nap() {
	sleep 0.1 2>/dev/null || sleep 1
}

# say USER LINE: USER types LINE.
say() {
	case $1 in
	alice) printf '%s\n' "$2" >&3 ;;
	bob)   printf '%s\n' "$2" >&4 ;;
	carol) printf '%s\n' "$2" >&5 ;;
	esac || die "could not write to $1's client"
}

# expect USER PATTERN: waits until USER's client prints a line matching
# the shell PATTERN, showing every line it prints on the way. The line
# is left in $got.
# shellcheck disable=SC2034 # read and written through eval
seen_alice=0 seen_bob=0 seen_carol=0
expect() {
	user=$1 pattern=$2 out="$tmp/$1.out"
	eval "seen=\$seen_$user"
	tries=$((WAIT * 10))
	while [ "$tries" -gt 0 ]; do
		lines=$(( $(wc -l <"$out") ))
		while [ "$seen" -lt "$lines" ]; do
			seen=$((seen + 1))
			eval "seen_$user=$seen"
			got=$(sed -n "${seen}p" "$out")
			printf '   %-8s %s\n' "[$user]" "$got"
			# shellcheck disable=SC2254 # a pattern on purpose
			case $got in
			$pattern) return 0 ;;
			esac
		done
		tries=$((tries - 1))
		nap
	done
	die "$user did not print '$pattern' within $WAIT s"
}

# ends PID WHAT: the process exits with status 0 within $WAIT s (it is
# stopped otherwise). The shell keeps the status of a child that ended
# until `wait` asks for it.
ends() {
	tries=$((WAIT * 10))
	while kill -0 "$1" 2>/dev/null && [ "$tries" -gt 0 ]; do
		tries=$((tries - 1))
		nap
	done
	kill "$1" 2>/dev/null
	wait "$1"
	status=$?
	[ "$status" -eq 0 ] || die "$2 exited with status $status"
}

# start_client USER: runs USER's client reading commands from a FIFO.
# Opening the FIFO blocks until we open its other end (open_input).
start_client() {
	if ! { mkfifo "$tmp/$1.in" && mkdir "$tmp/cfg-$1" && : >"$tmp/$1.out"; }; then
		die "cannot set up $1"
	fi
	"$BIN/secchat" --batch --endpoint "$endpoint" --user "$1" \
		--key "$keys/clients/$1.key" --password-file "$keys/clients/$1.pass" \
		--ca "$keys/ca.pem" --config-dir "$tmp/cfg-$1" --data-dir "$tmp/data" \
		<"$tmp/$1.in" >"$tmp/$1.out" 2>"$tmp/$1.log" &
	eval "pid_$1=\$!"
}

if [ ! -x "$BIN/secbroker" ] || [ ! -x "$BIN/secchat" ]; then
	echo "demo: build first ($BIN/secbroker and $BIN/secchat are missing)" >&2
	exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/secchat-demo.XXXXXX") || exit 1
keys="$tmp/keys"

echo "secchat demo: alice, bob and carol chat through a broker that relays"
echo "their messages but cannot read them. Lines in [brackets] are what each"
echo "user's client prints."

narrate "making keys: a demo CA, the broker's certificate, a key per user"
keys/secchat-keys "$keys" alice bob carol >"$tmp/keys.log" 2>&1 ||
	die "keys/secchat-keys failed"

narrate "starting the broker on a free local port"
"$BIN/secbroker" --endpoint 'tcp://127.0.0.1:*' --cert "$keys/broker.crt" \
	--key "$keys/broker.key" --users "$keys/users" \
	>"$tmp/broker.out" 2>"$tmp/broker.log" &
broker_pid=$!
endpoint=""
tries=$((WAIT * 10))
while [ -z "$endpoint" ] && [ "$tries" -gt 0 ]; do
	endpoint=$(sed -n 's/^secbroker listening on //p' "$tmp/broker.out")
	kill -0 "$broker_pid" 2>/dev/null || die "the broker did not start"
	tries=$((tries - 1))
	[ -n "$endpoint" ] || nap
done
[ -n "$endpoint" ] || die "the broker did not say where it listens"
echo "   broker listening on $endpoint"

narrate "alice, bob and carol log in"
start_client alice
start_client bob
start_client carol
exec 3>"$tmp/alice.in" 4>"$tmp/bob.in" 5>"$tmp/carol.in"
# A client that died makes `say` fail (EPIPE) instead of killing us.
trap '' PIPE
expect alice 'ready alice'
expect bob 'ready bob'
expect carol 'ready carol'

narrate "alice asks who is online"
say alice "/list"
expect alice 'users bob carol'

narrate "alice asks bob to talk"
say alice "/talk bob"
expect bob 'request alice'

narrate "bob accepts; their clients agree on keys only they hold"
say bob "/accept"
expect alice 'accepted bob'
expect alice 'chat bob *'
safety_alice=${got#chat bob }
expect bob 'chat alice *'
safety_bob=${got#chat alice }
[ "$safety_alice" = "$safety_bob" ] || die "alice and bob see different safety numbers"
echo "   (the same safety number on both sides: read aloud, it proves"
echo "    that no one, not even the broker, sits in the middle)"

narrate "they chat"
say alice "hi bob!"
expect bob 'msg alice hi bob!'
say bob "hi alice, only you can read this"
expect alice 'msg bob hi alice, only you can read this'
say alice "héllo wörld ✓"
expect bob 'msg alice héllo wörld ✓'

narrate "carol asks alice, who is busy: the broker answers for her"
say carol "/talk alice"
expect carol 'busy alice'

narrate "carol asks bob: busy too"
say carol "/talk bob"
expect carol 'busy bob'

narrate "alice leaves the chat and looks who is online"
say alice "/leave"
expect alice 'closed bob'
expect bob 'closed alice'
say alice "/list"
expect alice 'users bob carol'

narrate "carol asks bob again, and now he is free"
say carol "/talk bob"
expect bob 'request carol'
say bob "/accept"
expect carol 'accepted bob'
expect carol 'chat bob *'
expect bob 'chat carol *'
say carol "third time lucky"
expect bob 'msg carol third time lucky'
say bob "hello carol"
expect carol 'msg bob hello carol'

narrate "everyone quits"
say alice "/quit"
expect alice 'bye'
ends "$pid_alice" "alice's client"
pid_alice=""
say carol "/quit"
expect carol 'bye'
ends "$pid_carol" "carol's client"
pid_carol=""
expect bob 'closed carol'
say bob "/quit"
expect bob 'bye'
ends "$pid_bob" "bob's client"
pid_bob=""

narrate "the broker stops"
kill -TERM "$broker_pid"
ends "$broker_pid" "the broker"
broker_pid=""

narrate "what the broker saw (from its log)"
grep -E 'alice|bob|carol' "$tmp/broker.log" | sed 's/^/   | /'
for text in "hi bob!" "only you can read this" "wörld" "third time lucky" "hello carol"; do
	if grep -F -q "$text" "$tmp/broker.log"; then
		die "the broker's log contains the message text '$text'"
	fi
done
echo "   The broker knew who logged in and who talked to whom; none of the"
echo "   messages appears in its log: it only ever relayed ciphertext."

echo
echo "demo finished: everything happened as scripted"
