#!/bin/sh
# p2pmem-test.sh - one p2pmem-test style case: NVMe A -> buffer -> NVMe B
#
# usage: p2pmem-test.sh cmb|ivshmem|host THREADS CHUNK_SIZE [OFFSET]
#
# Runs p2pcopy the way users run Eideticom's p2pmem-test: 32 chunks,
# --check, the node's path as the p2pmem file ("host": no file, host
# memory, for comparison). Prints p2pcopy's output on stderr and one result line for
# p2pmem-test-<target>-<threads>t-<chunk>[-o<offset>] on stdout.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

CHUNKS=32
COPY_TIMEOUT=100

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
	echo "usage: $0 cmb|ivshmem|host THREADS CHUNK_SIZE [OFFSET]" >&2
	exit 2
fi
target=$1
threads=$2
chunk=$3
offset=${4:-}
name=p2pmem-test-$target-${threads}t-$chunk${offset:+-o$offset}

fail() {
	result FAIL "$name" "$@"
	exit 1
}

src=$(disk_of "$DISK_A_BDF") || fail "no NVMe disk of $DISK_A_BDF"
dst=$(disk_of "$DISK_B_BDF") || fail "no NVMe disk of $DISK_B_BDF"
buf=
if [ "$target" != host ]; then
	bdf=$(bdf_of "$target") || fail "unknown target $target"
	buf=$(node_of "$bdf") || fail "no /dev/p2pmem* node with PCI parent $bdf"
fi

set -- "$src" "$dst" ${buf:+"$buf"} -c "$CHUNKS" -s "$chunk" -t "$threads" \
	${offset:+-o "$offset"} --check
echo "\$ p2pcopy $*" >&2
log=/tmp/$name.log
timeout -s KILL "$COPY_TIMEOUT" "$P2PCOPY" "$@" >"$log" 2>&1
rc=$?
cat "$log" >&2

if [ "$rc" -eq 0 ] && grep -q '^MATCH on data check' "$log"; then
	result PASS "$name"
elif grep -q '^MISMATCH' "$log"; then
	fail "$(grep '^MISMATCH' "$log")"
elif [ "$rc" -ge 128 ]; then
	fail "p2pcopy killed by signal $((rc - 128)) (SIGKILL: no end after ${COPY_TIMEOUT} s)"
else
	fail "p2pcopy exited $rc: $(tail -n 1 "$log")"
fi
