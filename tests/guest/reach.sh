#!/bin/sh
# reach.sh - P2PMEM_IOC_REACH against real transfers (p2pmem.mode=reach, and
# a case of the test suite)
#
# Runs p2pmem_reach --json --verify as root and as an unprivileged user who
# may open the nodes and the disks, and checks, for every node (cmb: pool,
# ivshmem: device memory) and disk (a: the cmb controller's namespace, b:
# the plain NVMe's):
#   - the answer, map type and reasons, is the one scripts/topology.sh
#     predicts for the topology (p2pmem.reach= on the kernel command line),
#     and ACS redirection is reported on the port that has it;
#   - the transfer agrees with it: an O_DIRECT read into the node gives the
#     bytes it gives in host memory, or fails (EINVAL from NVMe, EREMOTEIO
#     from a queue without P2PDMA) and moves nothing where the answer is
#     "not supported";
#   - the unprivileged user gets the same answers for the pool node, and
#     EPERM for the device memory node (CAP_SYS_RAWIO).
# One result line per pair, reach-<topology>-<node>-<disk>, then the
# verdict reach-<topology>.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

REACH=$TESTS/p2pmem_reach
USER_ID=1000
OUT=/tmp/reach
topology=$(cmdline_arg p2pmem.topology) || topology=switch
expect=$(cmdline_arg p2pmem.reach) || expect=
failed=0

# fail_pair NAME REASON
fail_pair() {
	result FAIL "$1" "$2"
	failed=$((failed + 1))
}

# field LINE KEY: a string value of the JSON line
field() {
	echo "$1" | sed -n "s/.*\"$2\": \"\\([^\"]*\\)\".*/\\1/p"
}

# list LINE KEY: a list of strings of the JSON line, comma-separated
list() {
	echo "$1" | sed -n "s/.*\"$2\": \\[\\([^]]*\\)\\].*/\\1/p" | tr -d '" '
}

# answer LINE: the map type and, after a slash, the reasons joined by "+"
# (as p2pmem.reach= writes them)
answer() {
	reasons=$(list "$1" reasons | tr , +)
	echo "$(field "$1" map_type)${reasons:+/$reasons}"
}

# acs_expected LINE ANSWER: the bridge ACS redirection is to be reported
# on, if the answer names it: in these topologies, the port right above
# the DMA device (two functions of one device behind a root port)
acs_expected() {
	case $2 in
	*acs-redirect*)
		basename "$(dirname "$(readlink -f "/sys/bus/pci/devices/$(field "$1" dma_by)")")" ;;
	esac
}

# check_pair NODE-ROLE NODE DISK-ROLE DISK
check_pair() {
	name=reach-$topology-$1-$3
	key="\"node\": \"$2\", \"blockdev\": \"$4\""
	want=$(echo ",$expect," | sed -n "s/.*,$1-$3:\\([^,]*\\),.*/\\1/p")
	root=$(grep -F "$key" "$OUT.root")
	user=$(grep -F "$key" "$OUT.user")
	got=$(answer "$root")
	if [ -z "$want" ]; then
		fail_pair "$name" "p2pmem.reach= predicts nothing for $1-$3"
	elif [ -z "$got" ]; then
		fail_pair "$name" "no answer for $2 and $4: ${root:-no line}"
	elif [ "$got" != "$want" ]; then
		fail_pair "$name" "answer $got, the topology predicts $want ($root)"
	elif [ "$(list "$root" acs)" != "$(acs_expected "$root" "$got")" ]; then
		fail_pair "$name" "ACS redirection reported on '$(list "$root" acs)', not on '$(acs_expected "$root" "$got")'"
	elif ! echo "$root" | grep -q '"agrees": true'; then
		fail_pair "$name" "the transfer disagrees with $got: $(field "$root" check)"
	elif [ "$1" = ivshmem ] && ! echo "$user" | grep -q 'Operation not permitted'; then
		fail_pair "$name" "an unprivileged user was not refused the device memory node: ${user:-no line}"
	elif [ "$1" != ivshmem ] && [ "$(answer "$user")" != "$got" ]; then
		fail_pair "$name" "an unprivileged user got another answer: ${user:-no line}"
	elif [ "$1" != ivshmem ] && ! echo "$user" | grep -q '"agrees": true'; then
		fail_pair "$name" "the unprivileged user's transfer disagrees: $(field "$user" check)"
	else
		result PASS "$name"
	fi
}

wait_disks
node_of "$IVSHMEM_BDF" >/dev/null || "$CHECK" bind ivshmem >/dev/null
cmb=$(node_of "$CMB_BDF")
ivshmem=$(node_of "$IVSHMEM_BDF")
a=$(disk_of "$DISK_A_BDF")
b=$(disk_of "$DISK_B_BDF")

# The unprivileged user's group may open the nodes and the disks.
grep -q '^p2pmem:' /etc/passwd 2>/dev/null ||
	echo "p2pmem:x:$USER_ID:$USER_ID::/tmp:/bin/sh" >>/etc/passwd
for f in $cmb $ivshmem $a $b; do
	chgrp "$USER_ID" "$f" && chmod g+rw "$f"
done

args="--verify --node $cmb --node $ivshmem --blockdev $a --blockdev $b"
echo "--- p2pmem_reach $args (topology $topology)" >&2
# shellcheck disable=SC2086 # args is words
"$REACH" $args >&2
# shellcheck disable=SC2086
"$REACH" --json $args >"$OUT.root"
su -s /bin/sh p2pmem -c "$REACH --json $args" >"$OUT.user"
echo "--- the same as user p2pmem (uid $USER_ID)" >&2
cat "$OUT.user" >&2

check_pair cmb "$cmb" a "$a"
check_pair cmb "$cmb" b "$b"
check_pair ivshmem "$ivshmem" a "$a"
check_pair ivshmem "$ivshmem" b "$b"
for f in $cmb $ivshmem $a $b; do
	chgrp 0 "$f" && chmod g-rw "$f"
done
if [ "$failed" -eq 0 ]; then
	result PASS "reach-$topology"
else
	result FAIL "reach-$topology" "$failed of 4 pairs"
fi
