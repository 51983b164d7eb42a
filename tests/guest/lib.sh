# shellcheck shell=sh
# lib.sh - shared by the guest scripts (init, run-tests.sh, p2pmem-test.sh,
# demo.sh); sourced, not run. POSIX sh for busybox.

# shellcheck disable=SC2034 # used by the scripts that source this file
TESTS=${TESTS:-/tests}
CHECK=$TESTS/p2pmem-check
P2PCOPY=$TESTS/p2pcopy
KO=/lib/modules/p2pmem_pci.ko
INSMOD_LOG=/tmp/insmod.log

# The rig's devices (REFERENCE §5). p2pmem-check reads the same variables.
CMB_BDF=${P2PMEM_CMB_BDF:-0000:03:00.0}
IVSHMEM_BDF=${P2PMEM_IVSHMEM_BDF:-0000:05:00.0}
DISK_A_BDF=${P2PMEM_DISK_A_BDF:-0000:03:00.0}
DISK_B_BDF=${P2PMEM_DISK_B_BDF:-0000:04:00.0}

# result VERDICT CASE [REASON...]: the line the host parses
result() {
	r_verdict=$1
	r_name=$2
	shift 2
	echo "P2PMEM-RESULT: $r_verdict $r_name${*:+ $*}"
}

# bdf_of cmb|ivshmem: the PCI address of a target
bdf_of() {
	case $1 in
	cmb) echo "$CMB_BDF" ;;
	ivshmem) echo "$IVSHMEM_BDF" ;;
	*) return 1 ;;
	esac
}

# dev_for BDF LINK SYSDIR...: /dev/NAME of the first SYSDIR (.../NAME) whose
# LINK points at PCI device BDF
dev_for() {
	d_bdf=$1
	d_link=$2
	shift 2
	for d_dir in "$@"; do
		d_target=$(readlink -f "$d_dir/$d_link" 2>/dev/null) || continue
		# a region another driver published: the provider is its parent
		case ${d_target##*/} in
		p2pdma.region.*) d_target=${d_target%/*} ;;
		esac
		if [ "${d_target##*/}" = "$d_bdf" ]; then
			echo "/dev/${d_dir##*/}"
			return 0
		fi
	done
	return 1
}

# disk_of BDF: the NVMe namespace of the controller at BDF (names are not
# stable: never assume nvme0 is 03:00.0)
disk_of() {
	dev_for "$1" device/device /sys/block/*
}

# node_of BDF: the /dev/p2pmemN whose PCI parent is BDF
node_of() {
	dev_for "$1" device /sys/class/misc/p2pmem*
}

# wait_disks: NVMe namespaces are scanned asynchronously after boot
wait_disks() {
	w_i=0
	while [ "$w_i" -lt 30 ]; do
		disk_of "$DISK_A_BDF" >/dev/null && disk_of "$DISK_B_BDF" >/dev/null && return 0
		sleep 1
		w_i=$((w_i + 1))
	done
	echo "no NVMe disk for $DISK_A_BDF and/or $DISK_B_BDF after 30 s" >&2
	return 1
}
