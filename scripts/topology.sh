# shellcheck shell=bash
# shellcheck disable=SC2034,SC2054 # used by scripts/vm and scripts/agent.sh, which source it; QEMU's values are comma-separated
# topology.sh - the test VM's platform: its devices, ids and PCI slots, in
# this one place.  Sourced by scripts/vm (QEMU's command line) and
# scripts/agent.sh (hot-plug); needs VM_DIR (where the disk images live).
# set_topology picks one of TOPOLOGIES.
#
# Behind one PCIe switch (root port rp1, switch up1, downstream ports dn1-3):
#   role cmb      dn1  NVMe with a 64 MiB CMB: the pool node, and disk A
#   role disk     dn2  a plain NVMe: disk B
#   role ivshmem  dn3  ivshmem-plain with a 64 MiB BAR2: device memory once
#                      bound to p2pmem_pci
# That is topology "switch", where every test runs.  The others differ in
# how disk B reaches the memory of the cmb and ivshmem devices, for the
# reachability query (P2PMEM_IOC_REACH, scripts/vm --mode reach):
#   rootport       disk B behind a root port of its own (rp2): the path
#                  goes through the host bridge, which QEMU's default CPU
#                  (qemu64, AMD family 15h) and q35's host bridge (8086:29c0,
#                  not on the kernel's allowlist) do not allow
#   rootport-epyc  the same with an AMD EPYC CPU (family 17h, Zen), which
#                  the kernel trusts to route peer-to-peer DMA: allowed
#   iommu          QEMU's intel-iommu (DMA translation on), ivshmem and
#                  disk B as functions 0 and 1 of one device behind root
#                  port rp2.  With an IOMMU the kernel enables ACS redirect
#                  on the ports that have ACS, which QEMU's root ports do
#                  (QEMU 7.2's switch ports do not; no answer here depends
#                  on that), so even that pair goes through the host
#                  bridge: refused with the default CPU
#   iommu-epyc     the same with the EPYC CPU: all allowed, mapped by the
#                  IOMMU where the path goes through the host bridge
# Not a topology here: peers behind one switch with the IOMMU translating.
# The kernel answers "bus address", right on hardware, where the switch
# routes the request without ACS.  QEMU sends every DMA through its IOMMU
# instead, where the bus address is not mapped: the read completes, but
# the bytes never arrive (p2pmem_reach --verify: DISAGREES).  With
# iommu=pt (identity mapping) the same pairs agree.
# The guest finds them by identity, not by address (tests/guest/lib.sh,
# find_devices): the NVMe controllers by the serials that platform_cmdline
# puts on the kernel command line, ivshmem by its PCI ID 1af4:1110.  Tests
# name them by role to the host agent ("unplug cmb", "throttle disk 0").

TOPOLOGIES="switch rootport rootport-epyc iommu iommu-epyc"
CMB_SERIAL=p2pmem-cmb CMB_ID=nv0 CMB_DRIVE_ID=d0
DISK_SERIAL=p2pmem-disk DISK_DRIVE_ID=d1
IVSHMEM_ID=iv0 IVSHMEM_SIZE=64M
DISK_IMAGES=("$VM_DIR/nvme0.img" "$VM_DIR/nvme1.img")	# 256 MiB each, new per boot
DISK_IMAGE_SIZE=256M

# The devices the host agent removes and adds again, as on the command line.
CMB_DRIVE="if=none,id=$CMB_DRIVE_ID,format=raw,file=${DISK_IMAGES[0]}"
CMB_DEV=nvme,id=$CMB_ID,drive=$CMB_DRIVE_ID,serial=$CMB_SERIAL,bus=dn1,cmb_size_mb=64
IVSHMEM_DEV=ivshmem-plain,id=$IVSHMEM_ID,memdev=hm

DISK_DEV=nvme,id=nv1,drive=$DISK_DRIVE_ID,serial=$DISK_SERIAL

platform=(-machine q35 -m 2G -smp 2
	-global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off
	-drive "$CMB_DRIVE"
	-drive "if=none,id=$DISK_DRIVE_ID,format=raw,file=${DISK_IMAGES[1]}"
	-device pcie-root-port,id=rp1,chassis=1,slot=1
	-device x3130-upstream,id=up1,bus=rp1
	-device xio3130-downstream,id=dn1,bus=up1,chassis=2,slot=0
	-device xio3130-downstream,id=dn2,bus=up1,chassis=3,slot=0
	-device xio3130-downstream,id=dn3,bus=up1,chassis=4,slot=0
	-device "$CMB_DEV"
	-object "memory-backend-ram,id=hm,size=$IVSHMEM_SIZE")
# set_topology NAME: add where disk B sits (and the CPU) to platform, and
# set platform_cmdline, which tells the guest the serials and what
# P2PMEM_IOC_REACH must answer for node role x disk (A: the cmb device's
# namespace, B: the disk's): the map type and, after a slash, its reasons
# joined by "+", none if there is no slash, as tests/guest/reach.sh checks
set_topology() {
	local reach iommu=''
	case $1 in
	switch)
		IVSHMEM_DEV+=,bus=dn3
		platform+=(-device "$DISK_DEV,bus=dn2")
		reach=cmb-a:bus-address,cmb-b:bus-address,ivshmem-a:bus-address,ivshmem-b:bus-address ;;
	rootport | rootport-epyc)
		IVSHMEM_DEV+=,bus=dn3
		platform+=(-device pcie-root-port,id=rp2,chassis=5,slot=2 -device "$DISK_DEV,bus=rp2")
		reach=cmb-a:bus-address,cmb-b:N/host-bridge,ivshmem-a:bus-address,ivshmem-b:N/host-bridge ;;
	iommu | iommu-epyc)
		# QEMU wants the IOMMU before the devices it translates for
		platform=(-device intel-iommu,intremap=off "${platform[@]}")
		IVSHMEM_DEV+=,bus=rp2,addr=0.0,multifunction=on
		platform+=(-device pcie-root-port,id=rp2,chassis=5,slot=2 -device "$DISK_DEV,bus=rp2,addr=0.1")
		reach=cmb-a:bus-address,cmb-b:N/host-bridge,ivshmem-a:N/host-bridge,ivshmem-b:N/host-bridge+acs-redirect
		iommu=' intel_iommu=on' ;;
	*) die "unknown topology '$1': one of $TOPOLOGIES" ;;
	esac
	platform+=(-device "$IVSHMEM_DEV")
	# N: refused with QEMU's default CPU, through the host bridge with EPYC
	if [[ $1 == *-epyc ]]; then
		platform+=(-cpu EPYC,vendor=AuthenticAMD)	# also under KVM on Intel
		reach=$(sed 's/N\/\([^,]*\)/host-bridge\/\1+cpu/g' <<<"$reach")
	else
		reach=${reach//N\//not-supported\/}
	fi
	platform_cmdline="p2pmem.cmb_serial=$CMB_SERIAL p2pmem.disk_serial=$DISK_SERIAL p2pmem.topology=$1 p2pmem.reach=$reach$iommu"
}
