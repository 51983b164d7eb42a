# shellcheck shell=bash
# shellcheck disable=SC2034 # used by scripts/vm and scripts/agent.sh, which source it
# topology.sh - the test VM's platform: its devices, ids and PCI slots, in
# this one place.  Sourced by scripts/vm (QEMU's command line) and
# scripts/agent.sh (hot-plug); needs VM_DIR (where the disk images live).
#
# Behind one PCIe switch (root port rp1, switch up1, downstream ports dn1-3):
#   role cmb      dn1  NVMe with a 64 MiB CMB: the pool node, and disk A
#   role disk     dn2  a plain NVMe: disk B
#   role ivshmem  dn3  ivshmem-plain with a 64 MiB BAR2: device memory once
#                      bound to p2pmem_pci
# The guest finds them by identity, not by address (tests/guest/lib.sh,
# find_devices): the NVMe controllers by the serials that platform_cmdline
# puts on the kernel command line, ivshmem by its PCI ID 1af4:1110.  Tests
# name them by role to the host agent ("unplug cmb", "throttle disk 0").

CMB_SERIAL=p2pmem-cmb CMB_ID=nv0 CMB_DRIVE_ID=d0
DISK_SERIAL=p2pmem-disk DISK_DRIVE_ID=d1
IVSHMEM_ID=iv0 IVSHMEM_SIZE=64M
DISK_IMAGES=("$VM_DIR/nvme0.img" "$VM_DIR/nvme1.img")	# 256 MiB each, new per boot
DISK_IMAGE_SIZE=256M

# The devices the host agent removes and adds again, as on the command line.
CMB_DRIVE="if=none,id=$CMB_DRIVE_ID,format=raw,file=${DISK_IMAGES[0]}"
CMB_DEV=nvme,id=$CMB_ID,drive=$CMB_DRIVE_ID,serial=$CMB_SERIAL,bus=dn1,cmb_size_mb=64
IVSHMEM_DEV=ivshmem-plain,id=$IVSHMEM_ID,memdev=hm,bus=dn3

# shellcheck disable=SC2054 # QEMU's option values are comma-separated
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
	-device "nvme,id=nv1,drive=$DISK_DRIVE_ID,serial=$DISK_SERIAL,bus=dn2"
	-object "memory-backend-ram,id=hm,size=$IVSHMEM_SIZE"
	-device "$IVSHMEM_DEV")
platform_cmdline="p2pmem.cmb_serial=$CMB_SERIAL p2pmem.disk_serial=$DISK_SERIAL"
