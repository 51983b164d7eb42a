#!/bin/sh
# kselftest.sh TARGET | --no-node: run the series' kselftest
# (tools/testing/selftests/drivers/p2pmem_pci, here /tests/p2pmem_pci_test)
# and turn its KTAP output into result lines.
#
#   kselftest.sh TARGET   on TARGET's node (cmb or ivshmem), with the plain
#                         NVMe as P2PMEM_BLOCKDEV: one line per test,
#                         "P2PMEM-RESULT: PASS|FAIL|SKIP kselftest-TARGET/<test>";
#                         a test skipped for want of the mm/gup fix fails
#   kselftest.sh --no-node  with p2pmem_pci unloaded: every test must skip;
#                         one line, kselftest-no-node. The module is loaded
#                         again at the end.
# The KTAP output goes to stderr as it is.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

KSELFTEST=$TESTS/p2pmem_pci_test
OUT=/tmp/p2pmem-tests/kselftest.$$

# ktap_results NAME FILE: a result line per "ok"/"not ok" line; a failure's
# reason is the test's first failed expectation, else its first log line
ktap_results() {
	awk -v pfx="$1" '
	/^# +RUN +/ { why = ""; logged = "" }
	/^# [^ ]+\.c:[0-9]+:[^:]*:Expected / && why == "" { why = $0; sub(/^# [^ ]+\.c:[0-9]+:[^:]*:/, "", why) }
	/^# [^ ]+\.c:[0-9]+:/ && logged == "" { logged = $0; sub(/^# [^ ]+\.c:[0-9]+:[^:]*:/, "", logged) }
	/^ok [0-9]+ / {
		t = $3; sub(/^[^.]*\./, "", t)
		if (match($0, / # SKIP */)) {
			r = substr($0, RSTART + RLENGTH)
			# The series carries the mm/gup fix: its absence is a failure.
			if (r ~ /mm\/gup fix/)
				print "P2PMEM-RESULT: FAIL " pfx "/" t " skipped, but the series has it: " r
			else
				print "P2PMEM-RESULT: SKIP " pfx "/" t " " (r == "" ? "skipped" : r)
		} else {
			print "P2PMEM-RESULT: PASS " pfx "/" t
		}
		n++
	}
	/^not ok [0-9]+ / {
		t = $4; sub(/^[^.]*\./, "", t)
		if (why == "")
			why = logged == "" ? "see the KTAP output" : logged
		print "P2PMEM-RESULT: FAIL " pfx "/" t " " why
		n++
	}
	/^1\.\.[0-9]+$/ { plan = substr($0, 4) + 0 }
	END {
		if (plan == 0 || n != plan)
			print "P2PMEM-RESULT: FAIL " pfx " " n " results for a plan of " plan " tests"
	}' "$2"
}

run_target() {
	t_name=kselftest-$1
	t_bdf=$(bdf_of "$1") || { result FAIL "$t_name" "unknown target $1"; return; }
	t_node=$(node_of "$t_bdf") || { result FAIL "$t_name" "no node for $t_bdf"; return; }
	t_disk=$(disk_of "$DISK_B_BDF") || { result FAIL "$t_name" "no disk for $DISK_B_BDF"; return; }
	P2PMEM_UNBIND=1 P2PMEM_NODE=$t_node P2PMEM_BLOCKDEV=$t_disk "$KSELFTEST" >"$OUT" 2>&1
	t_rc=$?
	cat "$OUT" >&2
	ktap_results "$t_name" "$OUT"
	case $t_rc in
	0 | 1 | 4) ;;	# pass, some test failed (reported above), all skipped
	*) result FAIL "$t_name" "p2pmem_pci_test exited $t_rc" ;;
	esac
}

# Without any node every test skips, and the run counts as a pass.
run_no_node() {
	if [ ! -f "$KO" ]; then
		result SKIP kselftest-no-node "p2pmem_pci is built in: cannot be unloaded"
		return
	fi
	if ! rmmod p2pmem_pci; then
		result FAIL kselftest-no-node "rmmod p2pmem_pci failed"
		return
	fi
	"$KSELFTEST" >"$OUT" 2>&1
	n_rc=$?
	insmod "$KO" || echo "insmod $KO failed" >&2
	cat "$OUT" >&2
	n_plan=$(sed -n 's/^1\.\.//p' "$OUT")
	n_skip=$(grep -c '^ok [0-9]* .* # SKIP' "$OUT")
	if [ "$n_rc" -ne 0 ] && [ "$n_rc" -ne 4 ]; then
		result FAIL kselftest-no-node "p2pmem_pci_test exited $n_rc without a node"
	elif [ -z "$n_plan" ] || [ "$n_skip" -ne "$n_plan" ]; then
		result FAIL kselftest-no-node "$n_skip of ${n_plan:-?} tests skipped without a node"
	else
		result PASS kselftest-no-node
	fi
}

mkdir -p "${OUT%/*}"
case ${1:-} in
--no-node) run_no_node ;;
cmb | ivshmem) run_target "$1" ;;
*) echo "usage: kselftest.sh cmb|ivshmem|--no-node" >&2; exit 2 ;;
esac
rm -f "$OUT"
