#!/bin/sh
# run-client.sh: drives one secchat client in batch mode from a script.
#
#   run-client.sh USER ENDPOINT KEYS [SCRIPT]
#
# Starts `secchat --batch` as USER against the broker at ENDPOINT, with
# the keys that keys/secchat-keys made in KEYS (ca.pem,
# clients/USER.key, clients/USER.pass), and plays SCRIPT (default: USER.txt
# beside this file). Every line the client prints is shown on standard
# output as it comes; every line sent is shown as "> LINE". It exits 0
# when the script has played and the client has exited 0, and 1 (with the
# reason and the client's diagnostics on standard error) otherwise. A
# scripted user keeps no history (--no-history).
#
# The docker-compose demo (deploy/docker-compose.yml) runs it in the
# alice, bob and carol containers; tests/test_deploy.c runs the very
# same script and command files on loopback.
#
# A script has one directive per line; blank lines and lines starting
# with '#' are skipped:
#
#   send LINE             types LINE (a command or a message)
#   expect PATTERN        waits for an output line matching the shell
#                         PATTERN (case/glob syntax: * ? [...])
#   poll COMMAND PATTERN  sends COMMAND (one word, e.g. /list) every
#                         second until a line matching PATTERN comes
#
# expect takes the first line not yet taken that matches, wherever it is:
# lines the clients print in an order that varies from run to run (a
# request that arrives before the answer to /list) stay available for a
# later expect.
#
# Environment: SECCHAT (the client program, default `secchat` on PATH),
# SECCHAT_WAIT (seconds any expect or poll waits, default 30),
# SECCHAT_LOGIN_TIMEOUT (secchat --timeout, default 30).
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

set -u

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
	echo "usage: run-client.sh USER ENDPOINT KEYS [SCRIPT]" >&2
	exit 2
fi
user=$1 endpoint=$2 keys=$3
script=${4:-$(dirname "$0")/$user.txt}
SECCHAT=${SECCHAT:-secchat}
WAIT=${SECCHAT_WAIT:-30}
LOGIN_TIMEOUT=${SECCHAT_LOGIN_TIMEOUT:-30}

work="" pid=""
cleanup() {
	exec 3>&- 2>/dev/null
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	[ -n "$work" ] && rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# die MESSAGE: says why, with the end of the client's diagnostics.
die() {
	echo "run-client: $user: $*" >&2
	if [ -s "$work/err" ]; then
		echo "run-client: $user: secchat said:" >&2
		tail -n 20 "$work/err" | sed 's/^/  | /' >&2
	fi
	exit 1
}

# nap: a tenth of a second where sleep takes fractions, else a second.
nap() {
	sleep 0.1 2>/dev/null || sleep 1
}

# send LINE: types LINE into the client.
send() {
	printf '> %s\n' "$1"
	printf '%s\n' "$1" >&3 || die "could not send '$1': the client is gone"
}

# scan PATTERN: shows the output lines not shown yet and takes the first
# line not taken yet that matches PATTERN: 0 when there is one, else 1.
shown=0 taken=" "
scan() {
	n=0 found=0
	while IFS= read -r line; do
		n=$((n + 1))
		if [ "$n" -gt "$shown" ]; then
			printf '%s\n' "$line"
			shown=$n
		fi
		[ "$found" = 0 ] || continue
		case $taken in *" $n "*) continue ;; esac
		# shellcheck disable=SC2254 # a pattern on purpose
		case $line in
		$1) found=$n ;;
		esac
	done <"$work/out"
	[ "$found" != 0 ] || return 1
	taken="$taken$found "
	return 0
}

# wait_for PATTERN TENTHS: scan until a match, for at most TENTHS tenths
# of a second. 0 when found, 1 when not (yet), 2 when the client exited.
wait_for() {
	tries=$2
	while :; do
		scan "$1" && return 0
		kill -0 "$pid" 2>/dev/null || { scan "$1" && return 0; return 2; }
		[ "$tries" -gt 0 ] || return 1
		tries=$((tries - 1))
		nap
	done
}

expect() {
	wait_for "$1" $((WAIT * 10))
	case $? in
	1) die "no line matching '$1' within $WAIT s" ;;
	2) die "the client exited before printing a line matching '$1'" ;;
	esac
}

poll() {
	rounds=$WAIT
	while [ "$rounds" -gt 0 ]; do
		send "$1"
		wait_for "$2" 10
		case $? in
		0) return ;;
		2) die "the client exited before printing a line matching '$2'" ;;
		esac
		rounds=$((rounds - 1))
	done
	die "no line matching '$2' within $WAIT s of '$1'"
}

[ -r "$script" ] || { echo "run-client: $user: cannot read $script" >&2; exit 2; }
for f in ca.pem "clients/$user.key" "clients/$user.pass"; do
	[ -r "$keys/$f" ] || { echo "run-client: $user: cannot read $keys/$f" >&2; exit 2; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/run-client-$user.XXXXXX") || exit 1
if ! { mkfifo "$work/in" && mkdir "$work/cfg" && : >"$work/out"; }; then
	die "cannot set up $work"
fi
"$SECCHAT" --batch --user "$user" --endpoint "$endpoint" \
	--key "$keys/clients/$user.key" --password-file "$keys/clients/$user.pass" \
	--ca "$keys/ca.pem" --config-dir "$work/cfg" --timeout "$LOGIN_TIMEOUT" \
	--no-history <"$work/in" >"$work/out" 2>"$work/err" &
pid=$!
# Opening the FIFO waits for the client to open its end.
exec 3>"$work/in"
# A client that died makes `send` fail (EPIPE) instead of killing us.
trap '' PIPE

while IFS= read -r directive || [ -n "$directive" ]; do
	case $directive in
	'' | '#'*) continue ;;
	'send '*) send "${directive#send }" ;;
	'expect '*) expect "${directive#expect }" ;;
	'poll '*)
		rest=${directive#poll }
		poll "${rest%% *}" "${rest#* }" ;;
	*) die "$script: unknown directive: $directive" ;;
	esac
done <"$script"

# End of input: the client logs out (if the script did not) and exits.
exec 3>&-
tries=$((WAIT * 10))
while kill -0 "$pid" 2>/dev/null && [ "$tries" -gt 0 ]; do
	tries=$((tries - 1))
	nap
done
kill -0 "$pid" 2>/dev/null && die "the client did not exit within $WAIT s"
wait "$pid"
status=$?
pid=""
scan '' || :
[ "$status" -eq 0 ] || die "the client exited with status $status"
echo "run-client: $user: done" >&2
