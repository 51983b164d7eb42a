# shellcheck shell=bash
# shellcheck disable=SC2154 # set by scripts/vm, which sources this file
# initramfs.sh - the guest's image.  Sourced by scripts/vm; needs out (the
# kernel build), variant, VM_DIR, GUEST_DIR and KTREE.
#
# busybox-static with every applet, tests/guest/init as /init, every
# tests/guest/*.c compiled statically to /tests/<name>, tests/guest/*.sh in
# /tests/, the series' kselftest as /tests/p2pmem_pci_test and its tool
# /tests/p2pmem_reach, and on a kernel
# with CONFIG_P2PMEM_PCI=m the module as /lib/modules/p2pmem_pci.ko, with
# the rig's own modules (tests/guest/modules) built against the kernel.

KSELFTEST_DIR=drivers/p2pmem_pci
DRIVER_MODULE=drivers/misc/p2pmem_pci.ko

# build_initramfs DIR CPIO
build_initramfs() {
	local dir=$1 cpio=$2 busybox f name applet clog
	busybox=$(command -v busybox || true)
	[[ -n $busybox ]] || die "busybox is not installed: run scripts/install-deps (busybox-static)"
	if readelf -l "$busybox" 2>/dev/null | grep -q 'Requesting program interpreter'; then
		die "$busybox is dynamically linked: install busybox-static (scripts/install-deps)"
	fi
	[[ -f $GUEST_DIR/init ]] || die "tests/guest/init is missing: the guest side of the tests provides it"

	rm -rf "$dir"
	mkdir -p "$dir"/{bin,dev,etc,lib/modules,mnt,proc,root,run,sys,tmp,tests,usr}
	ln -s bin "$dir/sbin"
	ln -s ../bin "$dir/usr/bin"
	ln -s ../bin "$dir/usr/sbin"
	cp "$busybox" "$dir/bin/busybox"
	# Every applet links to busybox, but not "busybox" itself: that would
	# replace the binary with a symlink to itself.
	for applet in $("$busybox" --list); do
		[[ $applet == busybox ]] && continue
		ln -s busybox "$dir/bin/$applet"
	done

	clog=$(log_file "guest-build")
	for f in "$GUEST_DIR"/*.c; do
		[[ -f $f ]] || continue
		name=$(basename "$f" .c)
		gcc -static -O2 -Wall -Wextra -pthread -I "$GUEST_DIR" -o "$dir/tests/$name" "$f" >>"$clog" 2>&1 || {
			show_log_tail "$clog"
			die "compiling tests/guest/${f##*/} for the guest failed (errors above)"
		}
	done
	for f in "$GUEST_DIR"/*.sh; do
		[[ -f $f ]] || continue
		install -m 0755 "$f" "$dir/tests/"
	done
	build_kselftest "$dir/tests"
	install -m 0755 "$GUEST_DIR/init" "$dir/init"
	if grep -qx 'CONFIG_P2PMEM_PCI=m' "$out/.config"; then
		[[ -f $out/$DRIVER_MODULE ]] || die "$out/$DRIVER_MODULE is missing: run scripts/build $variant"
		install -m 0644 "$out/$DRIVER_MODULE" "$dir/lib/modules/p2pmem_pci.ko"
	fi
	build_test_modules "$dir/lib/modules"
	(cd "$dir" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc -R 0:0 --quiet) | gzip -1 >"$cpio"
}

# build_test_modules DIR: the rig's own modules (tests/guest/modules, e.g.
# a provider with two regions), built against the kernel in $out, into DIR
build_test_modules() {
	local mdir=$VM_DIR/modules-$variant mlog
	grep -qx 'CONFIG_MODULES=y' "$out/.config" || return 0
	mlog=$(log_file "test-modules-build")
	rm -rf "$mdir"
	cp -r "$GUEST_DIR/modules" "$mdir"
	CCACHE_DIR=$P2PMEM_CACHE/ccache kmake "$out" M="$mdir" modules >>"$mlog" 2>&1 || {
		show_log_tail "$mlog"
		die "building tests/guest/modules against $out failed (errors above)"
	}
	install -m 0644 "$mdir"/*.ko "$1/"
}

# build_kselftest DIR: the series' kselftest and its tool, built statically
# with their Makefile (make -C tools/testing/selftests TARGETS=...), into DIR
build_kselftest() {
	local src=$KTREE/tools/testing/selftests/$KSELFTEST_DIR klog kout=$VM_DIR/kselftest
	[[ -f $src/Makefile ]] ||
		die "$src is missing: the kernel tree $KTREE lacks the series (run scripts/apply)"
	klog=$(log_file "kselftest-build")
	# against the uapi headers of the same tree (kselftest's "make headers")
	make -C "$KTREE" O="$kout/uapi" headers >>"$klog" 2>&1 || {
		show_log_tail "$klog"
		die "make headers of $KTREE failed (errors above)"
	}
	make -C "$KTREE/tools/testing/selftests" TARGETS="$KSELFTEST_DIR" O="$kout" \
		KHDR_INCLUDES="-isystem $kout/uapi/usr/include" USERLDFLAGS=-static >>"$klog" 2>&1 || {
		show_log_tail "$klog"
		die "building the kselftest $KSELFTEST_DIR failed (errors above)"
	}
	install -m 0755 "$kout/kselftest/$KSELFTEST_DIR/p2pmem_pci_test" \
		"$kout/kselftest/$KSELFTEST_DIR/p2pmem_reach" "$1/"
}
