# shellcheck shell=bash
# shellcheck disable=SC2154 # set by scripts/vm, which sources this file
# agent.sh - the host agent: carries out the guest's requests (hot-unplug,
# plug, throttle) on the QEMU monitor.  Sourced by scripts/vm, which runs
# host_agent in the background; needs VM_DIR, agent_log and the devices of
# scripts/topology.sh.
#
# The guest writes one request per line to its second serial port
# (/dev/ttyS1) and reads "ok" or "error <why>":
#   unplug cmb|ivshmem   device_del (PCIe hot-unplug) of the device in that role
#   plug cmb|ivshmem     device_add it again (with its drive)
#   throttle disk BPS    limit reads of disk B's drive to BPS bytes/s (0: none)

# hmp COMMAND: run a command on the QEMU monitor; prints its output, fails
# if QEMU reports an error
hmp() {
	local outp
	outp=$(printf '%s\n' "$*" | socat -t 2 - "UNIX-CONNECT:$VM_DIR/monitor.sock" 2>&1 |
		tr -d '\r' | grep -av '^QEMU .* monitor\|^(qemu)' || true)
	printf '%s\n' "$outp"
	! grep -Eqi 'error|not found|could not|failed|invalid' <<<"$outp"
}

# device_gone ID: QEMU lists its devices and ID is not among them.  An
# answer without the "type" property is no answer (the monitor was busy).
device_gone() {
	local devs
	devs=$(hmp "qom-list /machine/peripheral") && grep -q '^type ' <<<"$devs" &&
		! grep -q "^$1 " <<<"$devs"
}

# unplug ID: device_del, then wait until QEMU has removed the device (the
# guest's pciehp powers the slot off 5 s after the attention button)
unplug() {
	hmp "device_del $1" || return 1
	wait_until 30 device_gone "$1" && return
	echo "$1 still present 30 s after device_del"
	return 1
}

# cmb_drive_released: the CMB NVMe's drive is gone (drive_state=gone) or no
# longer attached (drive_state=free).  It goes away with the removed
# device, a moment after the device itself.
cmb_drive_released() {
	local blk
	blk=$(hmp "info block") || true
	drive_state=gone
	grep -q "^$CMB_DRIVE_ID " <<<"$blk" || return 0
	drive_state=free
	! sed -n "/^$CMB_DRIVE_ID /,/^[^ ]/p" <<<"$blk" | grep -q 'Attached to:'
}

# plug_cmb: device_add the CMB NVMe again, adding its drive again if it went
plug_cmb() {
	local drive_state
	if ! wait_until 10 cmb_drive_released; then
		echo "drive $CMB_DRIVE_ID still attached 10 s after the device was removed"
		return 1
	fi
	[[ $drive_state == free ]] || hmp "drive_add 0 $CMB_DRIVE" || return 1
	hmp "device_add $CMB_DEV"
}

# plug_ivshmem N: device_add ivshmem again, with memory backend hmN.  A new
# device needs a backend of its own: QEMU aborts when a new ivshmem device
# takes the RAM block of a removed one.
plug_ivshmem() {
	hmp "object_add memory-backend-ram,id=hm$1,size=$IVSHMEM_SIZE" &&
		hmp "device_add ${IVSHMEM_DEV/memdev=hm/memdev=hm$1}"
}

# agent_do REQUEST: carry out one guest request; sets reply to "ok" or
# "error ..."
agent_do() {
	local req=$1 outp='' bps
	reply=ok
	case $req in
	"unplug cmb") outp=$(unplug "$CMB_ID") ;;
	"unplug ivshmem") outp=$(unplug "$IVSHMEM_ID") ;;
	"plug cmb") outp=$(plug_cmb) ;;
	"plug ivshmem")
		plugs=$((plugs + 1))
		outp=$(plug_ivshmem "$plugs") ;;
	"throttle disk "*)
		bps=${req#throttle disk }
		if [[ ! $bps =~ ^[0-9]+$ ]]; then
			reply="error: throttle wants bytes per second, not '$bps'"
			return
		fi
		outp=$(hmp "block_set_io_throttle $DISK_DRIVE_ID 0 $bps 0 0 0 0") ;;
	*)
		reply="error: unknown request '$req' (unplug|plug cmb|ivshmem, throttle disk BPS)"
		return ;;
	esac || reply="error: QEMU: ${outp//$'\n'/ }"
}

# host_agent: serve the guest's requests on the agent socket until QEMU
# closes it
host_agent() {
	local sock=$VM_DIR/agent.sock req reply='' plugs=0
	wait_until 10 test -S "$sock" || true
	coproc AGENT { exec socat - "UNIX-CONNECT:$sock"; }
	while IFS= read -r req <&"${AGENT[0]}"; do
		req=${req%$'\r'}
		[[ -n $req ]] || continue
		agent_do "$req"
		printf '%s  %s -> %s\n' "$(date +%T)" "$req" "$reply" >>"$agent_log"
		printf '%s\n' "$reply" >&"${AGENT[1]}"
	done
}
