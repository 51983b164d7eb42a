# shellcheck shell=sh
# wait.sh - the one polling helper of the shell side: sourced by the guest's
# lib.sh (busybox sh) and by the host's scripts/lib.sh (bash).

# wait_until SECS CMD...: run CMD every 0.1 s until it succeeds; false if it
# has not succeeded within SECS seconds
wait_until() {
	w_left=$(($1 * 10))
	shift
	until "$@"; do
		[ "$w_left" -gt 0 ] || return 1
		w_left=$((w_left - 1))
		sleep 0.1
	done
}
