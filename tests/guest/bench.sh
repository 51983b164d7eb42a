#!/bin/sh
# bench.sh - the p2pmem_pci benchmark (p2pmem.mode=bench)
#
# Runs p2pmem-bench on host memory and the NVMe CMB (pool node): the
# provider's /dev/p2pmemN against its sysfs p2pmem/allocate file, disk A ->
# buffer -> disk B for O_DIRECT. ivshmem bound to p2pmem_pci is device
# memory, which has no allocate file to measure against: only when
# p2pmem.bench_targets names it, its node alone. Prints result lines
# (bench-host, bench-cmb, bench-fragment-cmb, no-leak, bench-complete),
# then the CSV, each line prefixed with "P2PMEM-BENCH: ", and
# "P2PMEM-BENCH-INFO: key=value" lines about the run.
#
# Kernel command line (scripts/bench passes them through scripts/vm --append):
#   p2pmem.bench_reps=N        repetitions (default 5)
#   p2pmem.bench_total=SIZE    bytes copied per O_DIRECT measurement (16m)
#   p2pmem.bench_sizes=LIST    mmap + touch lengths (p2pmem-bench's default)
#   p2pmem.bench_sysfs_only=1  a kernel without p2pmem_pci (mainline): host
#                              memory and the CMB's allocate file alone
#   p2pmem.bench_targets=LIST  what to measure, comma-separated (default
#                              host,cmb; ivshmem: its device memory node)

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

BENCH=$TESTS/p2pmem-bench
WORK=/tmp/p2pmem-bench
CSV=$WORK/bench.csv
BENCH_TIMEOUT=600
TARGETS="host cmb"

reps=5
total=16m
sizes=
sysfs_only=
read -r cmdline </proc/cmdline
set -f
for arg in $cmdline; do
	case $arg in
	p2pmem.bench_reps=*) reps=${arg#*=} ;;
	p2pmem.bench_total=*) total=${arg#*=} ;;
	p2pmem.bench_sizes=*) sizes=${arg#*=} ;;
	p2pmem.bench_sysfs_only=1) sysfs_only=1 ;;
	p2pmem.bench_targets=*) TARGETS=$(echo "${arg#*=}" | tr , ' ') ;;
	esac
done
set +f

mkdir -p "$WORK"
echo "P2PMEM: benchmark on Linux $(uname -r): reps $reps, O_DIRECT total $total"
if ! wait_disks; then
	result FAIL bench-setup "no NVMe disks $DISK_A_BDF and $DISK_B_BDF"
	result FAIL bench-complete "setup failed"
	exit 1
fi
# ivshmem is device memory once bound to p2pmem_pci
case " $TARGETS " in
*" ivshmem "*) "$CHECK" bind ivshmem ;;
esac
"$CHECK" list
"$CHECK" snapshot "$WORK/state.start"

start=$(date +%s)
# Result lines and progress on the console as they come; the CSV goes to a
# file and is printed in one piece at the end, away from kernel messages.
# shellcheck disable=SC2086 # TARGETS is a list
(
	timeout -s KILL "$BENCH_TIMEOUT" "$BENCH" -r "$reps" -T "$total" \
		${sizes:+-s "$sizes"} ${sysfs_only:+--sysfs-only} -o "$CSV" $TARGETS 2>&1
	echo "$?" >"$WORK/rc"
) | tee "$WORK/results"
rc=$(cat "$WORK/rc" 2>/dev/null) || rc=255
elapsed=$(($(date +%s) - start))

complete=PASS
why=
for t in $TARGETS; do
	if ! grep -Eq "^P2PMEM-RESULT: [A-Z]+ bench-$t( |\$)" "$WORK/results"; then
		result FAIL "bench-$t" "no result: p2pmem-bench exited $rc$([ "$rc" -eq 137 ] && echo " (SIGKILL after ${BENCH_TIMEOUT} s)")"
		complete=FAIL
		why="p2pmem-bench stopped before bench-$t"
	fi
done
if [ "$rc" -ge 128 ] && [ "$complete" = PASS ]; then
	complete=FAIL
	why="p2pmem-bench killed by signal $((rc - 128))"
fi
if [ ! -s "$CSV" ]; then
	complete=FAIL
	why="no CSV from p2pmem-bench"
fi

timeout -s KILL 60 "$CHECK" no-leak "$WORK/state.start"

echo "P2PMEM-BENCH-INFO: kernel=$(uname -r)"
echo "P2PMEM-BENCH-INFO: reps=$reps"
echo "P2PMEM-BENCH-INFO: sysfs_only=${sysfs_only:-0}"
echo "P2PMEM-BENCH-INFO: odirect_total=$total"
echo "P2PMEM-BENCH-INFO: elapsed_s=$elapsed"
echo "P2PMEM-BENCH-INFO: cpus=$(grep -c '^processor' /proc/cpuinfo)"
echo "P2PMEM-BENCH-INFO: disk_a=$(disk_of "$DISK_A_BDF") ($DISK_A_BDF)"
echo "P2PMEM-BENCH-INFO: disk_b=$(disk_of "$DISK_B_BDF") ($DISK_B_BDF)"
for t in $TARGETS; do
	[ "$t" = host ] && continue
	bdf=$(bdf_of "$t")
	node=$(node_of "$bdf") || node=none
	mode=$(cat "/sys/class/misc/${node#/dev/}/mode" 2>/dev/null) || mode=none
	echo "P2PMEM-BENCH-INFO: $t=$node ($bdf; $mode)"
done
thp=$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null) || thp="not built in"
echo "P2PMEM-BENCH-INFO: thp=$thp"
if [ -s "$CSV" ]; then
	sed 's/^/P2PMEM-BENCH: /' "$CSV"
fi
result "$complete" bench-complete "$why"
