#!/bin/sh
# demo.sh - show data moving NVMe -> /dev/p2pmemN -> NVMe (p2pmem.mode=demo)
#
# The story lines start with "DEMO: ": scripts/vm shows only those on the
# terminal, the whole console goes to its log. Result lines are printed as
# they are, for the judge.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# say [TEXT]: a line of the story
say() {
	echo "DEMO: $*"
}

# story: the lines of stdin as lines of the story
story() {
	sed 's/^/DEMO: /'
}

# copy cmb|ivshmem|host: the p2pmem-test copy, its output in the story
copy() {
	sh "$TESTS/p2pmem-test.sh" "$1" 4 1m 2>/tmp/demo-copy.log
	story </tmp/demo-copy.log
}

say "=== p2pmem_pci demo: NVMe -> /dev/p2pmemN -> NVMe with O_DIRECT"
wait_disks
say
say "--- bind the ivshmem device $IVSHMEM_BDF to p2pmem_pci:"
say "    echo p2pmem_pci > /sys/bus/pci/devices/$IVSHMEM_BDF/driver_override"
say "    echo $IVSHMEM_BDF > /sys/bus/pci/drivers_probe"
"$CHECK" bind ivshmem 2>/dev/null
say
say "--- p2p memory nodes, their PCI parents, and the two NVMe disks:"
"$CHECK" list | story
for t in cmb ivshmem; do
	bdf=$(bdf_of "$t")
	say
	say "--- $t: $(disk_of "$DISK_A_BDF") -> $(node_of "$bdf") (PCI $bdf) -> $(disk_of "$DISK_B_BDF")"
	copy "$t"
done
say
say "--- the same copy through host memory, for comparison:"
copy host
