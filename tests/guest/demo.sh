#!/bin/sh
# demo.sh - show data moving NVMe -> /dev/p2pmemN -> NVMe (p2pmem.mode=demo)

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

echo "=== p2pmem_pci demo: NVMe -> /dev/p2pmemN -> NVMe with O_DIRECT"
wait_disks
echo
echo "--- bind the ivshmem device $IVSHMEM_BDF to p2pmem_pci:"
echo "    echo p2pmem_pci > /sys/bus/pci/devices/$IVSHMEM_BDF/driver_override"
echo "    echo $IVSHMEM_BDF > /sys/bus/pci/drivers_probe"
"$CHECK" bind ivshmem 2>/dev/null
echo
echo "--- p2p memory nodes, their PCI parents, and the two NVMe disks:"
"$CHECK" list
for t in cmb ivshmem; do
	bdf=$(bdf_of "$t")
	echo
	echo "--- $t: $(disk_of "$DISK_A_BDF") -> $(node_of "$bdf") (PCI $bdf) -> $(disk_of "$DISK_B_BDF")"
	sh "$TESTS/p2pmem-test.sh" "$t" 4 1m
done
echo
echo "--- the same copy through host memory, for comparison:"
sh "$TESTS/p2pmem-test.sh" host 4 1m
