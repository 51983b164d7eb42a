#!/bin/sh
# new-id.sh - bind ivshmem through new_id instead of driver_override
#
# usage: new-id.sh
#
# Unbinds ivshmem from p2pmem_pci, clears its driver_override, adds its
# vendor/device ID with new_id (which binds it: driver_data 0, so the driver
# picks the largest 64-bit prefetchable BAR), checks the node, then removes
# the ID again and binds the device back through driver_override, as the
# later cases expect. Prints one result line for case bind-new-id-ivshmem.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

name=bind-new-id-ivshmem
DRV=/sys/bus/pci/drivers/p2pmem_pci
DEV=/sys/bus/pci/devices/$IVSHMEM_BDF

fail() {
	result FAIL "$name" "$@"
	exit 1
}

# node_is PRESENT|ABSENT: the ivshmem node is there, or is not
node_is() {
	if node_of "$IVSHMEM_BDF" >/dev/null; then
		[ "$1" = PRESENT ]
	else
		[ "$1" = ABSENT ]
	fi
}

# wait_node PRESENT|ABSENT: the ivshmem node appears or goes within 10 s
wait_node() {
	wait_until 10 node_is "$1"
}

[ -e "$DRV/$IVSHMEM_BDF" ] || fail "ivshmem is not bound to p2pmem_pci before the case"
read -r vendor <"$DEV/vendor"
read -r device <"$DEV/device"
id="${vendor#0x} ${device#0x}"

echo "$IVSHMEM_BDF" >"$DRV/unbind" || fail "unbind failed"
wait_node ABSENT || fail "node still present after unbind"
echo >"$DEV/driver_override" || fail "cannot clear driver_override"
echo "$id" >"$DRV/new_id" || fail "new_id '$id' failed"
wait_node PRESENT || fail "no node after new_id '$id'"
node=$(node_of "$IVSHMEM_BDF")
sys=/sys/class/misc/${node#/dev/}
read -r mode <"$sys/mode"
read -r bar <"$sys/bar"
echo "new_id '$id' bound $IVSHMEM_BDF: $node, mode $mode, BAR $bar" >&2
if [ "$mode" != device ] || [ "$bar" != 2 ]; then
	fail "$node: mode $mode, BAR $bar (want device, 2)"
fi

echo "$id" >"$DRV/remove_id" || fail "remove_id '$id' failed"
echo "$IVSHMEM_BDF" >"$DRV/unbind" || fail "unbind after new_id failed"
wait_node ABSENT || fail "node still present after the second unbind"
echo p2pmem_pci >"$DEV/driver_override" || fail "cannot set driver_override"
echo "$IVSHMEM_BDF" >/sys/bus/pci/drivers_probe || fail "drivers_probe failed"
wait_node PRESENT || fail "no node after binding back with driver_override"
result PASS "$name"
