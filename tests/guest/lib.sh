# shellcheck shell=sh
# lib.sh - shared by the guest scripts (init, run-tests.sh, p2pmem-test.sh,
# demo.sh); sourced, not run. POSIX sh for busybox.

# shellcheck disable=SC2034 # used by the scripts that source this file
TESTS=${TESTS:-/tests}
# shellcheck source=wait.sh
. "$TESTS/wait.sh"
CHECK=$TESTS/p2pmem-check
P2PCOPY=$TESTS/p2pcopy
KO=/lib/modules/p2pmem_pci.ko
INSMOD_LOG=/tmp/insmod.log

# The rig's devices, by PCI address: P2PMEM_*_BDF, which init exports for
# everything it starts (find_devices). The C programs read the same.
CMB_BDF=${P2PMEM_CMB_BDF:-}
IVSHMEM_BDF=${P2PMEM_IVSHMEM_BDF:-}
DISK_A_BDF=${P2PMEM_DISK_A_BDF:-}
DISK_B_BDF=${P2PMEM_DISK_B_BDF:-}

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

# cmdline_arg NAME: the value of NAME=VALUE on the kernel command line
cmdline_arg() {
	read -r c_line </proc/cmdline
	for c_arg in $c_line; do
		case $c_arg in
		"$1"=*) echo "${c_arg#*=}" && return 0 ;;
		esac
	done
	return 1
}

# nvme_by_serial SERIAL: the PCI address of the NVMe controller with SERIAL
nvme_by_serial() {
	for n_dir in /sys/class/nvme/nvme*; do
		[ "$(tr -d ' ' <"$n_dir/serial" 2>/dev/null)" = "$1" ] || continue
		n_dev=$(readlink -f "$n_dir/device") && echo "${n_dev##*/}" && return 0
	done
	return 1
}

# pci_by_id VENDOR DEVICE: the address of the first PCI device with that ID
pci_by_id() {
	for p_dir in /sys/bus/pci/devices/*; do
		[ "$(cat "$p_dir/vendor")" = "$1" ] && [ "$(cat "$p_dir/device")" = "$2" ] &&
			echo "${p_dir##*/}" && return 0
	done
	return 1
}

# found_devices: every NVMe role of the rig has its controller (looked up
# by the serials in f_cmb and f_disk)
found_devices() {
	[ -n "$CMB_BDF" ] || CMB_BDF=$(nvme_by_serial "$f_cmb") || CMB_BDF=
	[ -n "$DISK_B_BDF" ] || DISK_B_BDF=$(nvme_by_serial "$f_disk") || DISK_B_BDF=
	[ -n "$CMB_BDF" ] && [ -n "$DISK_B_BDF" ]
}

# find_devices: find the rig's devices by identity, as scripts/topology.sh
# describes them: the NVMe controllers by the serials on the kernel command
# line (p2pmem.cmb_serial=, p2pmem.disk_serial=), ivshmem by its PCI ID;
# set and export P2PMEM_*_BDF (those already set are kept). The
# controllers are probed asynchronously: wait for them up to 30 s.
find_devices() {
	f_cmb=$(cmdline_arg p2pmem.cmb_serial)
	f_disk=$(cmdline_arg p2pmem.disk_serial)
	wait_until 30 found_devices
	[ -n "$IVSHMEM_BDF" ] || IVSHMEM_BDF=$(pci_by_id 0x1af4 0x1110) || IVSHMEM_BDF=
	[ -n "$DISK_A_BDF" ] || DISK_A_BDF=$CMB_BDF
	export P2PMEM_CMB_BDF="$CMB_BDF" P2PMEM_IVSHMEM_BDF="$IVSHMEM_BDF"
	export P2PMEM_DISK_A_BDF="$DISK_A_BDF" P2PMEM_DISK_B_BDF="$DISK_B_BDF"
	echo "devices: cmb ${CMB_BDF:-none} (serial ${f_cmb:-?}), disk ${DISK_B_BDF:-none} (serial ${f_disk:-?}), ivshmem ${IVSHMEM_BDF:-none}"
	[ -n "$CMB_BDF" ] && [ -n "$DISK_B_BDF" ] && [ -n "$IVSHMEM_BDF" ]
}

# have_disks: both NVMe disks have their namespace
have_disks() {
	disk_of "$DISK_A_BDF" >/dev/null && disk_of "$DISK_B_BDF" >/dev/null
}

# wait_disks: NVMe namespaces are scanned asynchronously after boot
wait_disks() {
	wait_until 30 have_disks && return
	echo "no NVMe disk for $DISK_A_BDF and/or $DISK_B_BDF after 30 s" >&2
	return 1
}
