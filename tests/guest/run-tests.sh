#!/bin/sh
# run-tests.sh - the p2pmem_pci guest test suite (p2pmem.mode=test)
#
# Prints one "P2PMEM-RESULT: PASS|FAIL|SKIP <case> [reason]" line per case
# and a closing "P2PMEM-SUMMARY: N passed, N failed, N skipped" line. Every
# case runs in the background under a deadline, so a case that crashes,
# hangs or prints no result still gets its FAIL line and the suite goes on.
# After every case each provider's p2pmem/available is compared with its
# value at the start; the final no-leak case makes a difference a failure.
#
# One case by hand:  /tests/p2pmem-check <case> <cmb|ivshmem> [size]
#                    sh /tests/p2pmem-test.sh <cmb|ivshmem> <threads> <chunk>

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

WORK=/tmp/p2pmem-tests
SNAPSHOT=$WORK/available.start
RESULTS=$WORK/results
CASE_TIMEOUT=120		# then SIGKILL
HANG_GRACE=15			# SIGKILL did not end it: stuck in the kernel

# record LINE: print a result line and keep it for the summary
record() {
	echo "$1"
	echo "$1" >>"$RESULTS"
}

# record_fail CASE REASON
record_fail() {
	record "P2PMEM-RESULT: FAIL $1 $2"
}

# check_result NAME RC OUT: turn a finished case into exactly one result line
check_result() {
	c_name=$1
	c_rc=$2
	c_out=$3
	grep -v '^P2PMEM-RESULT: ' "$c_out"
	c_count=$(grep -c '^P2PMEM-RESULT: ' "$c_out")
	c_line=$(grep '^P2PMEM-RESULT: ' "$c_out")
	if [ "$c_count" -eq 0 ]; then
		if [ "$c_rc" -eq 137 ]; then
			record_fail "$c_name" "SIGKILLed after ${CASE_TIMEOUT} s (timeout, or the OOM killer)"
		elif [ "$c_rc" -ge 128 ]; then
			c_sig=$((c_rc - 128))
			record_fail "$c_name" "killed by signal $c_sig ($(kill -l "$c_sig"))"
		else
			record_fail "$c_name" "exited $c_rc without a result line"
		fi
		return
	fi
	case $c_count:$c_line in
	"1:P2PMEM-RESULT: FAIL $c_name" | "1:P2PMEM-RESULT: FAIL $c_name "*)
		record "$c_line" ;;
	"1:P2PMEM-RESULT: PASS $c_name" | "1:P2PMEM-RESULT: SKIP $c_name" | \
	"1:P2PMEM-RESULT: SKIP $c_name "*)
		if [ "$c_rc" -eq 0 ]; then
			record "$c_line"
		else
			record_fail "$c_name" "exited $c_rc after: ${c_line#P2PMEM-RESULT: }"
		fi ;;
	*)
		c_first=$(echo "$c_line" | head -n 1)
		record_fail "$c_name" "malformed result ($c_count lines): ${c_first#P2PMEM-RESULT: }" ;;
	esac
}

# run_case NAME CMD...: CMD prints its result line on stdout, the rest on
# stderr. After a case hung in the kernel the rest are not run: the kernel
# is in an unknown state and each would wait out its deadline.
run_case() {
	r_name=$1
	shift
	if [ -n "$hung_case" ]; then
		record_fail "$r_name" "not run: $hung_case hung before it"
		return
	fi
	r_out=$WORK/$r_name.out
	r_rc=$WORK/$r_name.rc
	rm -f "$r_out" "$r_rc"
	echo "--- $r_name: $*"
	(
		timeout -s KILL "$CASE_TIMEOUT" "$@" >"$r_out"
		echo "$?" >"$r_rc.tmp"
		mv "$r_rc.tmp" "$r_rc"
	) &
	r_ticks=0
	r_limit=$(((CASE_TIMEOUT + HANG_GRACE) * TICKS_PER_S))
	while [ ! -e "$r_rc" ] && [ "$r_ticks" -lt "$r_limit" ]; do
		sleep "$TICK"
		r_ticks=$((r_ticks + 1))
	done
	if [ -e "$r_rc" ]; then
		check_result "$r_name" "$(cat "$r_rc")" "$r_out"
	else
		record_fail "$r_name" "hung in the kernel: SIGKILL did not end it in $((r_limit / TICKS_PER_S)) s"
		hung_case=$r_name
		return
	fi
	leak_check "$r_name"
}

# check_case CASE TARGET [SIZE]: a p2pmem-check case, named as it names itself
check_case() {
	run_case "$1${3:+-$3}-$2" "$CHECK" "$@"
}

# leak_check NAME: note the first case after which p2p memory is missing
leak_check() {
	[ -s "$SNAPSHOT" ] && [ -z "$leak_after" ] || return 0
	if ! "$CHECK" leak-check "$SNAPSHOT" 2>"$WORK/leak.log"; then
		leak_after=$1
		echo "P2PMEM-LEAK: after $1: $(tail -n 1 "$WORK/leak.log")"
	fi
}

module_case() {
	if [ -f "$KO" ]; then
		if grep -q '^p2pmem_pci ' /proc/modules; then
			record "P2PMEM-RESULT: PASS module-load"
		else
			record_fail module-load "insmod $KO failed: $(cat "$INSMOD_LOG" 2>/dev/null)"
		fi
	elif [ -d /sys/bus/pci/drivers/p2pmem_pci ]; then
		echo "p2pmem_pci is built in"
		record "P2PMEM-RESULT: PASS module-load"
	else
		record_fail module-load "no $KO and no built-in p2pmem_pci driver"
	fi
}

# kmemleak: needs CONFIG_DEBUG_KMEMLEAK and debugfs. Any report fails, as
# the host's log check does; the reason says whether p2pmem/p2pdma code is in it.
kmemleak_case() {
	k_file=/sys/kernel/debug/kmemleak
	if [ ! -w "$k_file" ]; then
		record "P2PMEM-RESULT: SKIP kmemleak no $k_file (CONFIG_DEBUG_KMEMLEAK off)"
		return
	fi
	echo "--- kmemleak: scanning twice (objects must be 5 s old)"
	echo scan >"$k_file"
	sleep 6
	echo scan >"$k_file"
	cat "$k_file" >"$WORK/kmemleak"
	k_count=$(grep -c 'unreferenced object' "$WORK/kmemleak")
	if [ "$k_count" -eq 0 ]; then
		record "P2PMEM-RESULT: PASS kmemleak"
		return
	fi
	cat "$WORK/kmemleak"
	if grep -Eq 'p2pmem|p2pdma' "$WORK/kmemleak"; then
		record_fail kmemleak "$k_count unreferenced objects, some from p2pmem/p2pdma code"
	else
		record_fail kmemleak "$k_count unreferenced objects (none names p2pmem/p2pdma)"
	fi
}

summary() {
	s_pass=$(grep -c '^P2PMEM-RESULT: PASS ' "$RESULTS")
	s_fail=$(grep -c '^P2PMEM-RESULT: FAIL ' "$RESULTS")
	s_skip=$(grep -c '^P2PMEM-RESULT: SKIP ' "$RESULTS")
	echo "P2PMEM-SUMMARY: $s_pass passed, $s_fail failed, $s_skip skipped"
}

main() {
	mkdir -p "$WORK"
	: >"$RESULTS"
	leak_after=
	hung_case=
	if sleep 0.1 2>/dev/null; then
		TICK=0.1
		TICKS_PER_S=10
	else
		TICK=1
		TICKS_PER_S=1
	fi
	echo "P2PMEM: test suite on Linux $(uname -r)"
	wait_disks

	module_case
	check_case nodes cmb
	check_case bind ivshmem
	"$CHECK" snapshot "$SNAPSHOT"
	check_case nodes ivshmem
	"$CHECK" list

	for t in ivshmem cmb; do
		for c in two-mappings private-einval oversize-enomem offset-errors dontneed; do
			check_case "$c" "$t"
		done
	done
	check_case bar-alias ivshmem
	run_case bind-new-id-ivshmem sh "$TESTS/new-id.sh"
	check_case no-stale-data cmb

	for t in ivshmem cmb; do
		for s in 4k 64k 1m; do
			check_case odirect "$t" "$s"
		done
	done
	for t in cmb ivshmem; do
		for n in 1 4; do
			for s in 4k 1m; do
				run_case "p2pmem-test-$t-${n}t-$s" sh "$TESTS/p2pmem-test.sh" "$t" "$n" "$s"
			done
		done
	done
	run_case p2pmem-test-ivshmem-4t-64k-o8m sh "$TESTS/p2pmem-test.sh" ivshmem 4 64k 8m

	check_case unbind-sigbus ivshmem
	check_case unbind-sigbus cmb
	run_case rmmod-busy "$CHECK" rmmod-busy
	kmemleak_case
	[ -z "$leak_after" ] || echo "p2p memory first went missing after case $leak_after"
	run_case no-leak "$CHECK" no-leak "$SNAPSHOT"
	summary
}

main "$@"
