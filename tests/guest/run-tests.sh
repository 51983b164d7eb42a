#!/bin/sh
# run-tests.sh - the p2pmem_pci guest test suite (p2pmem.mode=test)
#
# Prints one "P2PMEM-RESULT: PASS|FAIL|SKIP <case> [reason]" line per case,
# the one line the host reads (scripts/judge.sh counts them). Every case runs in the background under a deadline, so a case that crashes,
# hangs or prints no result still gets its FAIL line and the suite goes on.
# After every case the state is compared with a snapshot taken at the
# start (every provider's p2pmem/available, the nodes, the module's
# reference count, no task in D state): a case that leaves a difference
# fails, and later cases are judged against the new state.
#
# One case by hand:  /tests/p2pmem-check <case> <cmb|ivshmem> [arg]
#                    sh /tests/p2pmem-test.sh <cmb|ivshmem> <threads> <chunk>
#                    sh /tests/kselftest.sh <cmb|ivshmem>

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

WORK=/tmp/p2pmem-tests
SNAPSHOT=$WORK/state.start
RESULTS=$WORK/results
CASE_TIMEOUT=120		# then SIGKILL (DEADLINE=N: N for the next cases)
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

# case_verdict NAME RC OUT: the one result line of a finished case, in $verdict
case_verdict() {
	c_name=$1
	c_rc=$2
	c_out=$3
	c_count=$(grep -c '^P2PMEM-RESULT: ' "$c_out")
	c_line=$(grep '^P2PMEM-RESULT: ' "$c_out")
	verdict=
	if [ "$c_count" -eq 0 ]; then
		if [ "$c_rc" -eq 137 ]; then
			verdict="P2PMEM-RESULT: FAIL $c_name SIGKILLed after ${r_timeout} s (timeout, or the OOM killer)"
		elif [ "$c_rc" -ge 128 ]; then
			c_sig=$((c_rc - 128))
			verdict="P2PMEM-RESULT: FAIL $c_name killed by signal $c_sig ($(kill -l "$c_sig"))"
		else
			verdict="P2PMEM-RESULT: FAIL $c_name exited $c_rc without a result line"
		fi
		return
	fi
	case $c_count:$c_line in
	"1:P2PMEM-RESULT: FAIL $c_name" | "1:P2PMEM-RESULT: FAIL $c_name "*)
		verdict=$c_line ;;
	"1:P2PMEM-RESULT: PASS $c_name" | "1:P2PMEM-RESULT: SKIP $c_name" | \
	"1:P2PMEM-RESULT: SKIP $c_name "*)
		if [ "$c_rc" -eq 0 ]; then
			verdict=$c_line
		else
			verdict="P2PMEM-RESULT: FAIL $c_name exited $c_rc after: ${c_line#P2PMEM-RESULT: }"
		fi ;;
	*)
		c_first=$(echo "$c_line" | head -n 1)
		verdict="P2PMEM-RESULT: FAIL $c_name malformed result ($c_count lines): ${c_first#P2PMEM-RESULT: }" ;;
	esac
}

# run_bg NAME CMD...: run CMD with stdout to $WORK/NAME.out under the case
# deadline; sets $bg_rc, or returns 1 if it hung in the kernel (then every
# later case is not run: the kernel is in an unknown state, and each would
# wait out its deadline).
run_bg() {
	r_name=$1
	shift
	r_out=$WORK/$r_name.out
	r_rc=$WORK/$r_name.rc
	r_timeout=${DEADLINE:-$CASE_TIMEOUT}
	rm -f "$r_out" "$r_rc"
	echo "--- $r_name: $*"
	(
		timeout -s KILL "$r_timeout" "$@" >"$r_out"
		echo "$?" >"$r_rc.tmp"
		mv "$r_rc.tmp" "$r_rc"
	) &
	r_limit=$((r_timeout + HANG_GRACE))
	if ! wait_until "$r_limit" test -e "$r_rc"; then
		hung_case=$r_name
		return 1
	fi
	bg_rc=$(cat "$r_rc")
}

# ran_case NAME CMD...: run CMD as a case (run_bg) and show its stderr
# and other output; false, with a FAIL recorded, if it hung or was not run
ran_case() {
	if [ -n "$hung_case" ]; then
		record_fail "$1" "not run: $hung_case hung before it"
		return 1
	fi
	if ! run_bg "$@"; then
		record_fail "$1" "hung in the kernel: SIGKILL did not end it in $r_limit s"
		return 1
	fi
	grep -v '^P2PMEM-RESULT: ' "$r_out" || true
}

# one_case NAME CMD...: the verdict of a case that prints its result line
# on stdout, the rest on stderr; a pass only if the leak check after it
# passes too
one_case() {
	ran_case "$@" || return 0
	case_verdict "$1" "$bg_rc" "$r_out"
	case $verdict in
	"P2PMEM-RESULT: FAIL "*) ;;
	*) found_leak && verdict="P2PMEM-RESULT: FAIL $1 left the system changed: $leak" ;;
	esac
	record "$verdict"
}

# many_cases NAME CMD...: CMD prints a result line per test (names
# NAME/...); all are kept, plus a NAME/leak-check failure if it left
# anything behind
many_cases() {
	ran_case "$@" || return 0
	grep '^P2PMEM-RESULT: ' "$r_out" | while IFS= read -r s_line; do
		record "$s_line"
	done
	[ "$bg_rc" -eq 0 ] || record_fail "$1" "exited $bg_rc"
	if found_leak; then
		record_fail "$1/leak-check" "left the system changed: $leak"
	fi
}

# guarded HOW NAME CMD...: run the case with HOW (one_case, many_cases); a
# case that recorded nothing is a failure, never a silent gap
guarded() {
	g_how=$1
	shift
	g_before=$(wc -l <"$RESULTS")
	"$g_how" "$@"
	[ "$(wc -l <"$RESULTS")" -gt "$g_before" ] ||
		record_fail "$1" "recorded no result (a bug in run-tests.sh)"
}

run_case() {
	guarded one_case "$@"
}

run_suite() {
	guarded many_cases "$@"
}

# check_case CASE TARGET [ARG]: a p2pmem-check case, named as it names itself
check_case() {
	run_case "$1${3:+-$3}-$2" "$CHECK" "$@"
}

# found_leak: true if, compared with the snapshot, p2p memory, a node or a
# module reference is missing or a task is stuck; why in $leak
found_leak() {
	[ -s "$SNAPSHOT" ] || return 1
	if "$CHECK" leak-check "$SNAPSHOT" 2>"$WORK/leak.log"; then
		return 1
	fi
	leak=$(sed -n 's/.*\] FAIL: //p' "$WORK/leak.log" | head -n 1)
	echo "P2PMEM-LEAK: ${leak:=see $WORK/leak.log}"
	# Later cases are judged against the state as it is now.
	"$CHECK" snapshot "$SNAPSHOT" 2>/dev/null
	return 0
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

# debug_kernel_case: on the debug kernel, the debugging it was built for is on
debug_kernel_case() {
	grep -q 'p2pmem.variant=debug' /proc/cmdline || return 0
	d_off=
	dmesg | grep -q 'KernelAddressSanitizer initialized' || d_off="$d_off KASAN"
	[ -e /proc/lockdep_stats ] || d_off="$d_off PROVE_LOCKING"
	grep -q 'debug_pagealloc=on' /proc/cmdline || d_off="$d_off DEBUG_PAGEALLOC"
	[ -e /sys/kernel/debug/kmemleak ] || d_off="$d_off KMEMLEAK"
	[ -e /sys/kernel/debug/debug_objects/stats ] || d_off="$d_off DEBUG_OBJECTS"
	if [ -z "$d_off" ]; then
		record "P2PMEM-RESULT: PASS debug-kernel"
	else
		record_fail debug-kernel "not active:$d_off"
	fi
}

# lockdep_case: lockdep turns itself off after its first report, so it is
# still on only if nothing was reported
lockdep_case() {
	[ -e /proc/lockdep_stats ] || return 0
	if grep -Eq 'debug_locks: +1$' /proc/lockdep_stats; then
		record "P2PMEM-RESULT: PASS lockdep-on"
	else
		record_fail lockdep-on "lockdep switched itself off: it reported something (see the log)"
	fi
}

# unbind_inflight TARGET: the case, then the throttle off whatever happened
unbind_inflight() {
	check_case unbind-inflight "$1"
	"$CHECK" host "throttle disk 0" 2>/dev/null
}

main() {
	mkdir -p "$WORK"
	: >"$RESULTS"
	hung_case=
	DEADLINE=
	echo "P2PMEM: test suite on Linux $(uname -r)"
	wait_disks

	module_case
	debug_kernel_case
	check_case nodes cmb
	check_case bind ivshmem
	"$CHECK" snapshot "$SNAPSHOT"
	check_case nodes ivshmem
	"$CHECK" list

	DEADLINE=600
	for t in ivshmem cmb; do
		check_case two-mappings "$t"
		run_suite "kselftest-$t" sh "$TESTS/kselftest.sh" "$t"
	done
	DEADLINE=
	run_suite reach sh "$TESTS/reach.sh"
	check_case bar-alias ivshmem
	run_case bind-new-id-ivshmem sh "$TESTS/new-id.sh"
	check_case no-stale-data cmb
	check_case kill-populate cmb
	check_case kill-copy cmb
	check_case two-regions ivshmem
	for t in cmb ivshmem; do
		check_case free-fault-stress "$t" 10
	done
	for t in ivshmem cmb; do
		check_case rawio "$t"
	done
	check_case reset ivshmem
	check_case reset-race ivshmem

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
	DEADLINE=900
	check_case bind-cycles ivshmem 50
	DEADLINE=
	unbind_inflight ivshmem
	unbind_inflight cmb
	run_case rmmod-busy "$CHECK" rmmod-busy
	run_case kselftest-no-node sh "$TESTS/kselftest.sh" --no-node
	# Mainline pciehp makes lockdep report (and switch off) on the first
	# hot-unplug (tests/known-splats): check it stayed on until here.
	lockdep_case
	check_case hotunplug cmb
	check_case hotunplug ivshmem
	kmemleak_case
	run_case no-leak "$CHECK" no-leak "$SNAPSHOT"
	# Irreversible (no debugfs, no BAR access after it): keep it last.
	check_case lockdown ivshmem
}

main "$@"
