// SPDX-License-Identifier: GPL-2.0
/*
 * p2pmem-check - guest-side test cases for the p2pmem_pci driver
 *
 * Every case subcommand is one test case: it prints exactly one line
 *
 *	P2PMEM-RESULT: PASS|FAIL|SKIP <case> [reason]
 *
 * on stdout and exits 0 (pass, skip) or 1 (fail). Diagnostics go to stderr.
 * Helper subcommands (list, snapshot, leak-check) print no result line.
 *
 * TARGET names a p2p memory provider: "cmb" (the NVMe CMB, node mode pool)
 * or "ivshmem" (ivshmem BAR2 bound to p2pmem_pci, node mode device), whose
 * PCI addresses are in $P2PMEM_CMB_BDF and $P2PMEM_IVSHMEM_BDF (the VM's init
 * finds and exports them), or a PCI address. The node is found by scanning
 * /sys/class/misc/p2pmem* for the one whose parent is that device.
 * Case names are <subcommand>[-<arg>]-<target>, e.g. odirect-64k-cmb.
 *
 * A failing case returns at once without undoing its mappings: every case is
 * a process of its own, and its exit releases them before the next case.
 */
#define _GNU_SOURCE
#include <glob.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <poll.h>
#include <pthread.h>
#include <termios.h>
#include <linux/capability.h>

#include "lib.h"

/* The cases share one signature; not all of them use both arguments. */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#define MODULE_NAME		"p2pmem_pci"
#define MISC_MAJOR_NR		10
#define MAX_PROVIDERS		32

#define SYSFS_TIMEOUT_S		30	/* unbind/bind/probe must return by then */
#define NODE_TIMEOUT_MS		20000	/* a node (or disk) appears after bind */

#define TRY(expr) do {					\
	int r_ = (expr);				\
	if (r_ != R_PASS)				\
		return r_;				\
} while (0)

#define CHECK(cond, ...) do {				\
	if (!(cond))					\
		return fail(__VA_ARGS__);		\
} while (0)

static size_t page;

/* ---- sysfs and procfs --------------------------------------------------- */

/* The driver bound to PCI device @bdf. Return: 0, or -1 if none. */
static int driver_of(const char *bdf, char *drv, size_t len)
{
	return link_namef(drv, len, SYSFS_PCI "/devices/%s/driver", bdf);
}

static bool module_loaded(void)
{
	char line[256];
	bool found = false;
	FILE *f = fopen("/proc/modules", "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = !strncmp(line, MODULE_NAME " ", strlen(MODULE_NAME) + 1);
	fclose(f);
	return found;
}

/* ---- targets, nodes, disks ---------------------------------------------- */

struct target {
	char label[32];			/* case-name suffix */
	char bdf[32];
	const char *mode;		/* expected node mode, NULL: any */
	int bar;			/* expected BAR, -1: any */
	unsigned long long size;	/* expected size, 0: pool size if pool */
	int index;			/* in rig_targets, or past them; selects disk ranges */
};

/* What the node of each of rig_targets must be, then of any other PCI device */
static const struct target expected[] = {
	{ .mode = "pool", .bar = -1 },				/* cmb */
	{ .mode = "device", .bar = 2, .size = 64 * MIB },	/* ivshmem */
	{ .bar = -1 },
};

static int resolve_target(const char *arg, struct target *t)
{
	int i = target_lookup(arg, t->bdf, sizeof(t->bdf), t->label, sizeof(t->label));

	t->index = i < 0 ? NR_RIG_TARGETS : i;
	t->mode = expected[t->index].mode;
	t->bar = expected[t->index].bar;
	t->size = expected[t->index].size;
	return i < 0 ? -1 : 0;
}

static int find_node(const struct target *t, struct node *n)
{
	int cnt = node_scan(t->bdf, n, 1, false);

	CHECK(cnt > 0, "no /dev/p2pmem* node has PCI parent %s", t->bdf);
	CHECK(cnt == 1, "%d nodes have PCI parent %s, expected one", cnt, t->bdf);
	note("%s: parent %s, mode %s, bar %llu, bar_offset %llu, size %s",
	     n->dev, n->bdf, n->mode, n->bar, n->bar_offset, sz(n->size));
	return R_PASS;
}

/* find_node() once there is one: after a bind, an insmod, a boot (nvme probes async) */
static int wait_node(const struct target *t, struct node *n)
{
	wait_until(node_scan(t->bdf, n, 1, false) > 0, NODE_TIMEOUT_MS, WAIT_STEP_MS);
	return find_node(t, n);
}

/* Wait until the node @n (sysfs and /dev) is gone. */
static int wait_node_gone(const struct node *n, const char *after)
{
	CHECK(wait_until(!existsf(SYSFS_MISC "/%s", n->name) && access(n->dev, F_OK),
			 NODE_TIMEOUT_MS, WAIT_STEP_MS),
	      "%s still exists %d s after %s", n->dev, NODE_TIMEOUT_MS / 1000, after);
	return R_PASS;
}

/* find_node(); skip the case, for @why, unless the node is a pool node iff @pool */
static int find_node_kind(const struct target *t, struct node *n, bool pool, const char *why)
{
	TRY(find_node(t, n));
	if (n->pool != pool)
		return skip("%s is a %s node: %s", n->name, n->pool ? "pool" : "device", why);
	return R_PASS;
}

/* Open the disk of the rig's @role ("DISK_A") O_DIRECT: its path in @dev. */
static int open_disk(const char *role, char *dev, size_t len, int *fd)
{
	const char *bdf = rig_bdf(role);

	CHECK(disk_of_bdf(bdf, dev, len), "no block device of PCI %s in /sys/block", bdf);
	*fd = open_blockdev(dev);
	CHECK(*fd >= 0, "open %s O_DIRECT: %s", dev, strerror(errno));
	return R_PASS;
}

static int wait_disk(const char *bdf)
{
	char dev[80];

	CHECK(wait_until(disk_of_bdf(bdf, dev, sizeof(dev)) && !access(dev, F_OK),
			 NODE_TIMEOUT_MS, WAIT_STEP_MS),
	      "the disk of %s did not come back within %d s", bdf, NODE_TIMEOUT_MS / 1000);
	return R_PASS;
}

/* ---- provider accounting: p2pmem/available ------------------------------ */

struct avail {
	char bdf[32];
	unsigned long long bytes;
};

/*
 * A device bound to p2pmem_pci has device memory and no pool: nothing to
 * account, and no p2pmem/ directory. A page it leaked would hang its unbind.
 */
#define NO_POOL ULLONG_MAX

static int get_avail(const char *bdf, unsigned long long *v)
{
	char drv[64];

	*v = NO_POOL;
	if (!existsf(SYSFS_PCI "/devices/%s/p2pmem", bdf) && !driver_of(bdf, drv, sizeof(drv)) &&
	    !strcmp(drv, MODULE_NAME))
		return R_PASS;
	CHECK(!read_avail(bdf, v), "cannot read p2pmem/available of %s: %s", bdf, strerror(errno));
	return R_PASS;
}

/* Wait for @bdf's p2pmem/available to equal @want: freed memory must come back. */
static int wait_avail(const char *bdf, unsigned long long want, const char *when)
{
	unsigned long long cur = 0;

	if (want == NO_POOL || !avail_wait(bdf, want, &cur))
		return R_PASS;
	CHECK(!errno, "%s: %s has no p2pmem/available (provider gone?)", when, bdf);
	return fail("%s: %s p2pmem/available is %llu, expected %llu (%lld bytes missing)",
		    when, bdf, cur, want, (long long)(want - cur));
}

/* Every p2p memory provider in the system and its available bytes. */
static int avail_scan(struct avail *a, int max)
{
	DIR *d = opendir(SYSFS_PCI "/devices");
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)) && n < max) {
		if (e->d_name[0] == '.' || read_avail(e->d_name, &a[n].bytes))
			continue;
		scopy(a[n].bdf, sizeof(a[n].bdf), e->d_name);
		n++;
	}
	if (d)
		closedir(d);
	return n;
}

static int avail_compare(const struct avail *a, int n, const char *when)
{
	for (int i = 0; i < n; i++)
		TRY(wait_avail(a[i].bdf, a[i].bytes, when));
	return R_PASS;
}

/* ---- mappings, signals, children ---------------------------------------- */

static int open_node(const struct node *n, int *fd)
{
	*fd = open(n->dev, O_RDWR | O_CLOEXEC);
	CHECK(*fd >= 0, "open %s: %s", n->dev, strerror(errno));
	return R_PASS;
}

static int map_node(const struct node *n, int fd, size_t len, off_t off, void **p)
{
	*p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off);
	CHECK(*p != MAP_FAILED, "mmap %s length %s offset %s: %s", n->dev, sz(len),
	      sz((unsigned long long)off), strerror(errno));
	return R_PASS;
}

/* open_node(), then map_node() @len bytes at @off */
static int open_map(const struct node *n, int *fd, size_t len, off_t off, void **p)
{
	TRY(open_node(n, fd));
	return map_node(n, *fd, len, off, p);
}

static int expect_pattern(const void *p, size_t len, uint64_t seed, const char *what)
{
	uint64_t state = prng_init(seed);
	long long bad = prng_mismatch(p, len, &state);

	CHECK(bad < 0, "%s: data differs at byte %lld of %s", what, bad, sz(len));
	return R_PASS;
}

static int expect_zero(const void *p, size_t len, const char *what)
{
	long long bad = first_nonzero(p, len);

	CHECK(bad < 0, "%s: byte %lld of %s is not zero (a previous user's data?)",
	      what, bad, sz(len));
	return R_PASS;
}

static sigjmp_buf touch_env;
static volatile sig_atomic_t touch_signal;

static void touch_handler(int sig)
{
	touch_signal = sig;
	siglongjmp(touch_env, 1);
}

/* Read or write one word at @p. Return: 0 if it worked, else the signal raised. */
static int touch(void *p, bool write)
{
	struct sigaction sa = { .sa_handler = touch_handler }, old_bus, old_segv;
	volatile uint64_t *w = p;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old_bus);
	sigaction(SIGSEGV, &sa, &old_segv);
	touch_signal = 0;
	if (!sigsetjmp(touch_env, 1)) {
		if (write)
			*w = 0x5a5a5a5a5a5a5a5aULL;
		else
			(void)*w;
	}
	sigaction(SIGBUS, &old_bus, NULL);
	sigaction(SIGSEGV, &old_segv, NULL);
	return touch_signal;
}

static int expect_sigbus(void *p, bool write, const char *when)
{
	int sig = touch(p, write);

	CHECK(sig == SIGBUS, "%s: %s the old mapping gave %s, expected SIGBUS", when,
	      write ? "writing" : "reading",
	      !sig ? "no fault" : sig == SIGSEGV ? "SIGSEGV" : "another signal");
	note("%s: %s -> SIGBUS", when, write ? "write" : "read");
	return R_PASS;
}

/*
 * fork() with a pipe from the child to the parent. Return: 0 in the child,
 * with the pipe's write end in @fd; the child's pid in the parent, with the
 * read end in @fd; -1 (the case's reason set) if pipe() or fork() failed.
 */
static pid_t fork_piped(int *fd)
{
	int pfd[2];
	pid_t pid;

	if (pipe(pfd)) {
		fail("pipe: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fail("fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	close(pfd[pid ? 1 : 0]);
	*fd = pfd[pid ? 0 : 1];
	return pid;
}

/*
 * Run @fn in a child process ("another user"). The child's failure reason
 * comes back through a pipe and becomes this case's reason.
 */
static int in_child(int (*fn)(void *), void *arg, const char *what)
{
	char buf[sizeof(reason)] = "";
	int fd, status;
	ssize_t n;
	pid_t pid;

	pid = fork_piped(&fd);
	if (pid < 0)
		return R_FAIL;
	if (!pid) {
		int r = fn(arg);

		if (write(fd, reason, strlen(reason)) < 0)
			r = R_FAIL;
		_exit(r);
	}
	n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(status), "%s: child killed by signal %d", what, WTERMSIG(status));
	CHECK(WEXITSTATUS(status) == R_PASS, "%s: %s", what, buf[0] ? buf : "child failed");
	return R_PASS;
}

/* Show where a stuck child sleeps in the kernel, and all blocked tasks. */
static void dump_stuck(pid_t pid)
{
	char stack[4096];

	if (!read_strf(stack, sizeof(stack), "/proc/%d/stack", pid))
		note("kernel stack of stuck writer %d:\n%s", pid, stack);
	write_str("/proc/sysrq-trigger", "w");
}

/*
 * Write @val to @path from a child process, so that a write that never
 * returns (a hung unbind) fails the case instead of hanging it.
 */
static int write_timed(const char *path, const char *val)
{
	double start = mono_time();
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (!pid)
		_exit(write_str(path, val) ? errno : 0);
	if (!wait_until(waitpid(pid, &status, WNOHANG) == pid, SYSFS_TIMEOUT_S * 1000,
			WAIT_STEP_MS)) {
		dump_stuck(pid);
		return fail("'echo %s > %s' did not return within %d s", val, path,
			    SYSFS_TIMEOUT_S);
	}
	CHECK(WIFEXITED(status), "writer of %s killed by signal %d", path, WTERMSIG(status));
	CHECK(!WEXITSTATUS(status), "echo %s > %s: %s", val, path,
	      strerror(WEXITSTATUS(status)));
	note("echo %s > %s: %.2f s", val, path, mono_time() - start);
	return R_PASS;
}

static int rmmod(const char *name)
{
	return syscall(SYS_delete_module, name, O_NONBLOCK);
}

static int insmod(const char *ko)
{
	int fd = open(ko, O_RDONLY | O_CLOEXEC), ret;

	CHECK(fd >= 0, "open %s: %s", ko, strerror(errno));
	ret = syscall(SYS_finit_module, fd, "", 0);
	CHECK(!ret, "finit_module %s: %s", ko, strerror(errno));
	close(fd);
	return R_PASS;
}

static int driver_write(const char *drv, const char *file, const char *bdf)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), SYSFS_PCI "/drivers/%s/%s", drv, file);
	return write_timed(path, bdf);
}

/* Map @len bytes of a fresh open: pool memory is zero; data reads back. */
static int node_smoke(const struct node *n)
{
	uint64_t seed = new_seed();
	size_t len = MIB;
	void *p;
	int fd;

	TRY(open_map(n, &fd, len, 0, &p));
	if (n->pool)
		TRY(expect_zero(p, len, "fresh pool mapping"));
	pattern_fill(p, len, seed);
	TRY(expect_pattern(p, len, seed, "write then read back"));
	CHECK(!munmap(p, len) && !close(fd), "munmap/close %s: %s", n->dev, strerror(errno));
	note("%s works: %s mapped, written and read back", n->dev, sz(len));
	return R_PASS;
}

/* ---- case: nodes / builtin-node / bind ---------------------------------- */

static int check_devnode(const struct node *n)
{
	unsigned int maj, min;
	struct stat st;
	char buf[32];

	CHECK(!stat(n->dev, &st), "stat %s: %s", n->dev, strerror(errno));
	CHECK(S_ISCHR(st.st_mode), "%s is not a character device", n->dev);
	CHECK((st.st_mode & 07777) == 0600, "%s has mode %04o, expected 0600", n->dev,
	      st.st_mode & 07777);
	CHECK(!st.st_uid && !st.st_gid, "%s is owned by %u:%u, expected root", n->dev,
	      st.st_uid, st.st_gid);
	CHECK(!read_strf(buf, sizeof(buf), SYSFS_MISC "/%s/dev", n->name) &&
	      sscanf(buf, "%u:%u", &maj, &min) == 2, "cannot read %s/%s/dev", SYSFS_MISC, n->name);
	CHECK(major(st.st_rdev) == maj && minor(st.st_rdev) == min,
	      "%s is %u:%u but sysfs says %u:%u", n->dev, major(st.st_rdev),
	      minor(st.st_rdev), maj, min);
	CHECK(maj == MISC_MAJOR_NR, "%s has major %u, not a misc device", n->dev, maj);
	return R_PASS;
}

/* Length of BAR @bar of @bdf from its "resource" file; 0 if not a memory BAR. */
static int bar_len(const char *bdf, unsigned long long bar, unsigned long long *len)
{
	unsigned long long start, end, flags;
	char path[PATH_MAX], line[128];
	FILE *f;
	bool ok = false;

	snprintf(path, sizeof(path), SYSFS_PCI "/devices/%s/resource", bdf);
	f = fopen(path, "re");
	CHECK(f, "open %s: %s", path, strerror(errno));
	for (unsigned long long i = 0; i <= bar && fgets(line, sizeof(line), f); i++)
		ok = i == bar && sscanf(line, "%llx %llx %llx", &start, &end, &flags) == 3;
	fclose(f);
	CHECK(ok, "%s has no line for BAR %llu", path, bar);
	*len = end && (flags & 0x200) ? end - start + 1 : 0;	/* IORESOURCE_MEM */
	return R_PASS;
}

/* The node of @t appears, is the right kind of file and describes a valid region. */
static int check_target_node(const struct target *t)
{
	unsigned long long blen, psize, avail;
	struct node n;

	TRY(wait_node(t, &n));
	TRY(check_devnode(&n));
	CHECK(n.pool || !strcmp(n.mode, "device"), "%s: mode '%s' is neither pool nor device",
	      n.name, n.mode);
	CHECK(!t->mode || !strcmp(n.mode, t->mode), "%s: mode %s, expected %s", n.name,
	      n.mode, t->mode);
	CHECK(t->bar < 0 || n.bar == (unsigned long long)t->bar, "%s: bar %llu, expected %d",
	      n.name, n.bar, t->bar);
	CHECK(n.bar <= 5, "%s: bar %llu is not a BAR index", n.name, n.bar);
	CHECK(n.size && !(n.size % page) && !(n.bar_offset % page),
	      "%s: size %llu / bar_offset %llu not whole pages", n.name, n.size, n.bar_offset);
	TRY(bar_len(n.bdf, n.bar, &blen));
	CHECK(n.bar_offset + n.size <= blen, "%s: region [%llu, +%llu) exceeds BAR %llu (%llu bytes)",
	      n.name, n.bar_offset, n.size, n.bar, blen);
	CHECK(!t->size || n.size == t->size, "%s: size %s, expected %s", n.name, sz(n.size),
	      sz(t->size));
	if (n.pool) {
		CHECK(!read_u64f(&psize, SYSFS_PCI "/devices/%s/p2pmem/size", n.bdf),
		      "pool node %s: provider %s has no p2pmem/size", n.name, n.bdf);
		CHECK(t->size || n.size == psize, "%s: size %s, provider's p2pmem/size %s",
		      n.name, sz(n.size), sz(psize));
		TRY(get_avail(n.bdf, &avail));
		CHECK(avail <= n.size, "%s: available %llu > size %llu", n.name, avail, n.size);
	}
	return R_PASS;
}

/* One node per region: every provider has a node, every node a provider, no twins. */
static int check_all_nodes(void)
{
	struct node nodes[MAX_NODES];
	struct avail prov[MAX_PROVIDERS];
	int cnt = node_scan(NULL, nodes, MAX_NODES, true);
	int np = avail_scan(prov, MAX_PROVIDERS);

	if (cnt < 0)
		return R_FAIL;
	CHECK(cnt <= MAX_NODES, "%d nodes, more than this test handles", cnt);
	for (int i = 0; i < cnt; i++) {
		if (nodes[i].pool)
			CHECK(existsf(SYSFS_PCI "/devices/%s/p2pmem", nodes[i].bdf),
			      "%s: parent %s is not a p2pdma provider (no p2pmem/)",
			      nodes[i].name, nodes[i].bdf);
		else
			CHECK(!existsf(SYSFS_PCI "/devices/%s/p2pmem/allocate", nodes[i].bdf),
			      "%s: device memory, but its parent %s lends it out through "
			      "p2pmem/allocate too", nodes[i].name, nodes[i].bdf);
		for (int j = 0; j < i; j++)
			CHECK(strcmp(nodes[i].bdf, nodes[j].bdf) || nodes[i].bar != nodes[j].bar ||
			      nodes[i].bar_offset != nodes[j].bar_offset,
			      "%s and %s describe the same region", nodes[i].name, nodes[j].name);
	}
	for (int p = 0; p < np; p++) {
		bool found = false;

		for (int i = 0; i < cnt && !found; i++)
			found = !strcmp(nodes[i].bdf, prov[p].bdf);
		CHECK(found, "p2p memory provider %s has no /dev/p2pmem* node", prov[p].bdf);
	}
	note("%d nodes for %d providers", cnt, np);
	return R_PASS;
}

static int case_nodes(const struct target *t, const char *arg)
{
	TRY(check_target_node(t));
	return check_all_nodes();
}

/* p2pmem.mode=boot: a =y kernel has the driver and the CMB node at boot. */
static int case_builtin_node(const struct target *unused, const char *arg)
{
	struct target t;

	resolve_target("cmb", &t);
	CHECK(!module_loaded(), MODULE_NAME " is a loaded module; this kernel should have it built in");
	CHECK(existsf(SYSFS_PCI "/drivers/" MODULE_NAME), "no PCI driver " MODULE_NAME " registered");
	return check_target_node(&t);
}

/* Set the driver_override of @bdf to @drv ("" clears it). */
static int set_override(const char *bdf, const char *drv)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), SYSFS_PCI "/devices/%s/driver_override", bdf);
	CHECK(!write_str(path, *drv ? drv : "\n"), "echo %s > %s: %s", drv, path,
	      strerror(errno));
	return R_PASS;
}

/* Bind @bdf to @drv through driver_override; "" leaves it unbound. */
static int rebind(const char *bdf, const char *drv)
{
	char cur[64];

	if (!driver_of(bdf, cur, sizeof(cur)))
		TRY(driver_write(cur, "unbind", bdf));
	TRY(set_override(bdf, drv));
	if (!*drv)
		return R_PASS;
	TRY(write_timed(SYSFS_PCI "/drivers_probe", bdf));
	CHECK(!driver_of(bdf, cur, sizeof(cur)) && !strcmp(cur, drv),
	      "%s did not bind to %s (probe failed? see the kernel log)", bdf, drv);
	return R_PASS;
}

static int case_bind(const struct target *t, const char *arg)
{
	char drv[64];
	struct node n;

	if (!driver_of(t->bdf, drv, sizeof(drv))) {
		CHECK(!strcmp(drv, MODULE_NAME), "%s is bound to %s", t->bdf, drv);
		note("%s already bound to " MODULE_NAME, t->bdf);
	} else {
		TRY(rebind(t->bdf, MODULE_NAME));
	}
	return wait_node(t, &n);
}

/* ---- case: two-mappings / bar-alias ------------------------------------- */

#define NOFFS	3
#define WIN	(64 * KIB)

/* Offsets to probe in a device node: start, 1 MiB, last window. */
static void probe_offsets(const struct node *n, off_t offs[NOFFS])
{
	offs[0] = 0;
	offs[1] = MIB;
	offs[2] = n->size - WIN;
}

struct peer_arg {
	const struct node *n;
	off_t offs[NOFFS];
	uint64_t seed;
};

/* Another process opens the node itself: sees seed+i, writes seed+100+i. */
static int peer_process(void *arg)
{
	struct peer_arg *a = arg;
	char what[64];
	void *p;
	int fd;

	TRY(open_node(a->n, &fd));
	for (int i = 0; i < NOFFS; i++) {
		snprintf(what, sizeof(what), "other process, offset %s", sz(a->offs[i]));
		TRY(map_node(a->n, fd, WIN, a->offs[i], &p));
		TRY(expect_pattern(p, WIN, a->seed + i, what));
		pattern_fill(p, WIN, a->seed + 100 + i);
	}
	return R_PASS;
}

static int two_mappings_device(const struct node *n)
{
	struct peer_arg peer = { .n = n, .seed = new_seed() };
	void *a[NOFFS], *b[NOFFS];
	char what[64];
	int fd1, fd2;

	CHECK(n->size >= 2 * MIB, "%s: region of %s too small for this test", n->name, sz(n->size));
	probe_offsets(n, peer.offs);
	TRY(open_node(n, &fd1));
	TRY(open_node(n, &fd2));
	for (int i = 0; i < NOFFS; i++) {
		TRY(map_node(n, fd1, WIN, peer.offs[i], &a[i]));
		TRY(map_node(n, fd2, WIN, peer.offs[i], &b[i]));
		pattern_fill(a[i], WIN, peer.seed + i);
	}
	/* written everything first: offsets that aliased each other would show here */
	for (int i = 0; i < NOFFS; i++) {
		snprintf(what, sizeof(what), "second mapping, offset %s", sz(peer.offs[i]));
		TRY(expect_pattern(b[i], WIN, peer.seed + i, what));
	}
	TRY(in_child(peer_process, &peer, "another process"));
	for (int i = 0; i < NOFFS; i++) {
		snprintf(what, sizeof(what), "after the other process wrote at %s",
			 sz(peer.offs[i]));
		TRY(expect_pattern(a[i], WIN, peer.seed + 100 + i, what));
	}
	note("offsets 0, 1 MiB, size-64 KiB: same memory through 2 mappings, 2 files, 2 processes");
	return R_PASS;
}

struct pool_peer_arg {
	void *p;
	uint64_t seed;
};

/* A forked child shares the parent's MAP_SHARED pool mapping. */
static int pool_peer(void *arg)
{
	struct pool_peer_arg *a = arg;

	TRY(expect_pattern(a->p, WIN, a->seed, "inherited mapping in a child"));
	pattern_fill(a->p, WIN, a->seed + 2);
	return R_PASS;
}

static int two_mappings_pool(const struct node *n)
{
	struct pool_peer_arg peer = { .seed = new_seed() };
	void *b;
	int fd;

	TRY(open_map(n, &fd, WIN, 0, &peer.p));
	TRY(map_node(n, fd, WIN, 0, &b));
	TRY(expect_zero(peer.p, WIN, "first mapping"));
	TRY(expect_zero(b, WIN, "second mapping"));
	pattern_fill(peer.p, WIN, peer.seed);
	/* pool mappings are separate memory */
	TRY(expect_zero(b, WIN, "second mapping after writing the first"));
	pattern_fill(b, WIN, peer.seed + 1);
	TRY(expect_pattern(peer.p, WIN, peer.seed, "first mapping after writing the second"));
	TRY(in_child(pool_peer, &peer, "forked child"));
	TRY(expect_pattern(peer.p, WIN, peer.seed + 2, "after the child wrote"));
	note("two mmaps of a pool node: separate zeroed memory; shared with a forked child");
	return R_PASS;
}

static int case_two_mappings(const struct target *t, const char *arg)
{
	struct node n;

	TRY(find_node(t, &n));
	return n.pool ? two_mappings_pool(&n) : two_mappings_device(&n);
}

/* Device node offset X is BAR offset bar_offset + X, seen through resourceN. */
static int case_bar_alias(const struct target *t, const char *arg)
{
	uint64_t seed = new_seed();
	char res[PATH_MAX], what[128];
	off_t offs[NOFFS];
	struct node n;
	int fd, rfd;
	void *a, *r;

	TRY(find_node_kind(t, &n, false, "its memory has no fixed BAR offset"));
	probe_offsets(&n, offs);
	snprintf(res, sizeof(res), SYSFS_PCI "/devices/%s/resource%llu", n.bdf, n.bar);
	TRY(open_node(&n, &fd));
	rfd = open(res, O_RDWR | O_SYNC | O_CLOEXEC);
	CHECK(rfd >= 0, "open %s: %s", res, strerror(errno));
	for (int i = 0; i < NOFFS; i++) {
		off_t boff = n.bar_offset + offs[i];

		TRY(map_node(&n, fd, WIN, offs[i], &a));
		r = mmap(NULL, WIN, PROT_READ | PROT_WRITE, MAP_SHARED, rfd, boff);
		CHECK(r != MAP_FAILED, "mmap %s at %s: %s", res, sz(boff), strerror(errno));
		pattern_fill(a, WIN, seed + i);
		snprintf(what, sizeof(what), "node offset %s vs resource%llu at BAR offset %s",
			 sz(offs[i]), n.bar, sz(boff));
		TRY(expect_pattern(r, WIN, seed + i, what));
		pattern_fill(r, WIN, seed + 50 + i);
		TRY(expect_pattern(a, WIN, seed + 50 + i, what));
	}
	note("node offset X == BAR%llu offset %llu + X, both directions", n.bar, n.bar_offset);
	return R_PASS;
}

#define STRESS_TASKS	4

/*
 * Reap the @n tasks in @pids, all of them; each exits R_PASS, or R_FAIL
 * after printing why. The first that failed or was killed fails the case.
 */
static int wait_tasks(const pid_t *pids, int n, const char *what)
{
	int status, failed = 0;

	for (int i = 0; i < n; i++) {
		CHECK(waitpid(pids[i], &status, 0) == pids[i], "waitpid: %s", strerror(errno));
		if (WIFSIGNALED(status))
			failed = failed ? failed : WTERMSIG(status);
		else if (WEXITSTATUS(status) != R_PASS)
			failed = failed ? failed : -1;
	}
	CHECK(!failed, "a %s %s%s", what, failed > 0 ? "was killed by " : "failed",
	      failed == SIGBUS ? "SIGBUS" : failed > 0 ? strsignal(failed) : " (see above)");
	return R_PASS;
}

/* ---- case: rawio / reset ----------------------------------------------- */

/* In a child: drop CAP_SYS_RAWIO, then open the node. */
static int open_without_rawio(void *arg)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];
	const struct node *n = arg;
	int fd;

	CHECK(!syscall(SYS_capget, &hdr, data), "capget: %s", strerror(errno));
	data[CAP_TO_INDEX(CAP_SYS_RAWIO)].effective &= ~CAP_TO_MASK(CAP_SYS_RAWIO);
	CHECK(!syscall(SYS_capset, &hdr, data), "capset: %s", strerror(errno));
	fd = open(n->dev, O_RDWR | O_CLOEXEC);
	if (n->pool) {
		CHECK(fd >= 0, "open %s without CAP_SYS_RAWIO: %s", n->dev, strerror(errno));
		return R_PASS;
	}
	CHECK(fd < 0 && errno == EPERM, "open %s without CAP_SYS_RAWIO: %s, expected EPERM",
	      n->dev, fd < 0 ? strerror(errno) : "it worked");
	return R_PASS;
}

/* Device memory is raw BAR access: CAP_SYS_RAWIO, as for /dev/mem; pool memory is not. */
static int case_rawio(const struct target *t, const char *arg)
{
	struct node n;

	TRY(find_node(t, &n));
	TRY(in_child(open_without_rawio, &n, "root without CAP_SYS_RAWIO"));
	note("root without CAP_SYS_RAWIO: open of the %s node %s", n.mode,
	     n.pool ? "works" : "fails with EPERM");
	return R_PASS;
}

/* Whether the page at @p is in the page tables, as mincore() reports it */
static int mapped_now(void *p, bool *yes)
{
	unsigned char v;

	CHECK(!mincore(p, page, &v), "mincore: %s", strerror(errno));
	*yes = v & 1;
	return R_PASS;
}

/* A reset of the device revokes device mappings; the next access maps the kept data again. */
static int case_reset(const struct target *t, const char *arg)
{
	uint64_t seed = new_seed();
	const size_t len = MIB;
	char path[PATH_MAX];
	struct node n;
	bool in;
	void *p;
	int fd;

	TRY(find_node_kind(t, &n, false, "resets are its provider's driver's business"));
	snprintf(path, sizeof(path), SYSFS_PCI "/devices/%s/reset", n.bdf);
	TRY(open_map(&n, &fd, len, 0, &p));
	pattern_fill(p, len, seed);
	TRY(mapped_now(p, &in));
	CHECK(in, "the first page is not mapped after writing it");
	CHECK(!write_str(path, "1"), "write 1 to %s: %s", path, strerror(errno));
	TRY(mapped_now(p, &in));
	CHECK(!in, "the mapping outlived a reset of %s", n.bdf);
	TRY(expect_pattern(p, len, seed, "after the reset"));
	TRY(mapped_now(p, &in));
	CHECK(in, "the first page is not mapped again after reading it");
	CHECK(!munmap(p, len) && !close(fd), "munmap/close: %s", strerror(errno));
	note("reset of %s revoked the mapping; the next access mapped the same data", n.bdf);
	return R_PASS;
}

#define RESET_RACES	10

/*
 * One of the tasks of reset-race: its own 1 MiB of @n, written once, then
 * read back over and over until *@stop, so it faults while resets revoke
 * the mapping and while a reset is in progress.
 */
static void reset_race_task(const struct node *n, int i, const volatile int *stop)
{
	uint64_t seed = new_seed();
	unsigned long passes = 0;
	void *p;
	int fd;

	if (open_map(n, &fd, MIB, (off_t)i * MIB, &p))
		_exit(R_FAIL);
	pattern_fill(p, MIB, seed);
	while (!*stop) {
		if (expect_pattern(p, MIB, seed, "between resets"))
			_exit(R_FAIL);
		passes++;
	}
	fprintf(stderr, "  reset-race task %d: %lu passes over its mapping\n", getpid(), passes);
	_exit(R_PASS);
}

/*
 * Resets of the device while tasks fault on their mappings of it: a fault
 * during a reset waits for it, none gets SIGBUS or other data.
 */
static int case_reset_race(const struct target *t, const char *arg)
{
	pid_t pids[STRESS_TASKS];
	char path[PATH_MAX];
	volatile int *stop;
	struct node n;
	double start;
	int err = 0;

	TRY(find_node_kind(t, &n, false, "resets are its provider's driver's business"));
	snprintf(path, sizeof(path), SYSFS_PCI "/devices/%s/reset", n.bdf);
	stop = mmap(NULL, sizeof(*stop), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(stop != MAP_FAILED, "mmap: %s", strerror(errno));
	*stop = 0;
	start = mono_time();
	fflush(NULL);
	for (int i = 0; i < STRESS_TASKS; i++) {
		pids[i] = fork();
		CHECK(pids[i] >= 0, "fork: %s", strerror(errno));
		if (!pids[i])
			reset_race_task(&n, i, stop);
	}
	for (int i = 0; i < RESET_RACES && !err; i++) {
		sleep_ms(100);
		if (write_str(path, "1"))
			err = errno;
	}
	*stop = 1;
	TRY(wait_tasks(pids, STRESS_TASKS, "reset-race task"));
	CHECK(!err, "write 1 to %s: %s", path, strerror(err));
	note("%d resets of %s in %.1f s while %d tasks faulted: no SIGBUS, data intact",
	     RESET_RACES, n.bdf, mono_time() - start, STRESS_TASKS);
	return R_PASS;
}

/* ---- case: no-stale-data ----------------------------------------------- */

#define STALE_LEN	(4 * MIB)

/* One user of node @arg: fresh pool memory must be zero; then leave dirty memory behind. */
static int stale_user(void *arg)
{
	const struct node *n = arg;
	void *p;
	int fd;

	TRY(open_map(n, &fd, STALE_LEN, 0, &p));
	TRY(expect_zero(p, STALE_LEN, "fresh mapping"));
	pattern_fill(p, STALE_LEN, new_seed());
	CHECK(!munmap(p, STALE_LEN) && !close(fd), "munmap/close: %s", strerror(errno));
	return R_PASS;
}

static int case_no_stale_data(const struct target *t, const char *arg)
{
	unsigned long long before;
	struct node n;

	TRY(find_node_kind(t, &n, true, "it shares device memory by design"));
	TRY(get_avail(n.bdf, &before));
	TRY(stale_user(&n));			/* same process, open after close */
	TRY(stale_user(&n));
	TRY(in_child(stale_user, &n, "user process 1"));	/* other processes */
	TRY(in_child(stale_user, &n, "user process 2"));
	TRY(wait_avail(n.bdf, before, "after all users closed"));
	note("4 users of %s each got zeroed memory", sz(STALE_LEN));
	return R_PASS;
}

/* ---- case: kill-populate ----------------------------------------------- */

/*
 * Populate @len of a new mapping of @n: by writing a word per page, or with
 * @copy by read() from /dev/zero into it, so that the kernel's copy takes the
 * faults; write a byte to @ready first (before mmap()), exit 0 when done.
 * Runs in a child.
 */
static void populate_child(const struct node *n, size_t len, bool copy, int ready)
{
	int fd = open(n->dev, O_RDWR | O_CLOEXEC), zfd = -1;
	volatile char *p;
	ssize_t got;

	if (copy)
		zfd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (copy && zfd < 0) || write(ready, "r", 1) != 1)
		_exit(R_FAIL);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		_exit(R_FAIL);
	for (size_t i = 0; i < len && !copy; i += page)
		p[i] = 1;
	for (size_t i = 0; i < len && copy; i += (size_t)got) {
		got = read(zfd, (char *)p + i, len - i);
		if (got <= 0)
			_exit(R_FAIL);
	}
	_exit(R_PASS);
}

/*
 * Start populate_child() and, if @kill_after >= 0, SIGKILL it that many
 * seconds after it said it was about to map. Return the seconds from that
 * moment (or from the kill) to its end in @secs.
 */
static int populate_run(const struct node *n, size_t len, bool copy, double kill_after,
			double *secs)
{
	int fd, status;
	double t0;
	char c;
	pid_t pid;

	pid = fork_piped(&fd);
	if (pid < 0)
		return R_FAIL;
	if (!pid)
		populate_child(n, len, copy, fd);
	CHECK(read(fd, &c, 1) == 1, "the populating child died before mapping");
	close(fd);
	t0 = mono_time();
	if (kill_after >= 0) {
		usleep((useconds_t)(kill_after * 1e6));
		kill(pid, SIGKILL);
		t0 = mono_time();
	}
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
	*secs = mono_time() - t0;
	if (kill_after < 0)
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == R_PASS,
		      "populating %s of %s failed", sz(len), n->dev);
	return R_PASS;
}

/*
 * A task killed while it populates a large pool mapping goes at once: pool
 * memory is cleared in bounded steps as it is first touched, stopping for a
 * fatal signal, not all at mmap() under the mmap lock. Time a full populate,
 * then kill one a tenth of that time after it starts mapping: it must be gone
 * within half the full time (clearing all at mmap() takes 0.8 of it; the
 * teardown of a debug kernel takes up to 0.3), and the memory must come back.
 * @len: what to populate, or 0 for half the free memory, at most 48 MiB;
 * with @copy, the kernel populates it (populate_child()).
 */
static int kill_populate(const struct target *t, bool copy, size_t len)
{
	const char *how = copy ? "copying into" : "populating";
	unsigned long long before;
	double full, gone;
	struct node n;

	TRY(find_node_kind(t, &n, true, "it clears nothing"));
	TRY(get_avail(n.bdf, &before));
	if (!len) {
		len = (size_t)(before / 2) & ~(size_t)(8 * MIB - 1);
		if (len > 48 * MIB)
			len = 48 * MIB;
		if (len < 16 * MIB)
			return skip("%s has %s free, less than 2 x 16 MiB", n.name, sz(before));
	}
	TRY(populate_run(&n, len, copy, -1, &full));
	TRY(wait_avail(n.bdf, before, "after the full populate"));
	TRY(populate_run(&n, len, copy, full / 10, &gone));
	TRY(wait_avail(n.bdf, before, "after the killed populate"));
	CHECK(gone <= full / 2,
	      "killed %.0f ms into %s %s, the task took %.0f ms to go (all of it: %.0f ms)",
	      full * 100, how, sz(len), gone * 1000, full * 1000);
	note("%s %s: %.0f ms; killed %.0f ms in, gone %.0f ms later", how, sz(len),
	     full * 1000, full * 100, gone * 1000);
	return R_PASS;
}

static int case_kill_populate(const struct target *t, const char *arg)
{
	return kill_populate(t, false, 0);
}

#define FRAG_SINGLES	4096	/* pages mapped one by one: 16 MiB */

/*
 * The same with a kernel-mode copy into the mapping, into memory in runs of
 * 3 pages, so that the clearing of every block checks for the signal every
 * few pages: a fault that gives up for the signal must let the copy fail,
 * not leave it faulting on the same page. FRAG_SINGLES pages are mapped one
 * by one, the rest of the region in one mapping, then 3 of every 4 single
 * pages unmapped: the free memory the copy gets. The child that copies does
 * not inherit those mappings (MADV_DONTFORK): its exit would take longer
 * than the copy.
 */
static int case_kill_copy(const struct target *t, const char *arg)
{
	unsigned long long avail;
	char *maps[FRAG_SINGLES], *rest = MAP_FAILED;
	size_t nr = 0, rest_len = 0;
	struct node n;
	int fd, r;

	TRY(find_node_kind(t, &n, true, "it clears nothing"));
	TRY(open_node(&n, &fd));
	for (; nr < FRAG_SINGLES; nr++) {
		maps[nr] = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (maps[nr] == MAP_FAILED || madvise(maps[nr], page, MADV_DONTFORK))
			break;
	}
	CHECK(nr == FRAG_SINGLES, "mapping %s page by page: %s", n.name, strerror(errno));
	TRY(get_avail(n.bdf, &avail));
	rest_len = (size_t)avail & ~(page - 1);
	if (rest_len)
		rest = mmap(NULL, rest_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(!rest_len || (rest != MAP_FAILED && !madvise(rest, rest_len, MADV_DONTFORK)),
	      "mmap of the rest of %s (%s): %s", n.name, sz(rest_len), strerror(errno));
	for (size_t i = 0; i < nr; i++)
		if (i % 4 != 3)
			munmap(maps[i], page);
	note("%s: %s free in runs of 3 pages", n.name, sz(nr / 4 * 3 * page));
	r = kill_populate(t, true, nr / 4 * 3 * page);
	for (size_t i = 3; i < nr; i += 4)
		munmap(maps[i], page);
	if (rest_len)
		munmap(rest, rest_len);
	close(fd);
	return r;
}

/* ---- case: two-regions ------------------------------------------------- */

#define TWO_REGIONS_DRIVER	"p2pmem_two_regions"
#define TWO_REGIONS_KO		"/lib/modules/" TWO_REGIONS_DRIVER ".ko"

/* Map all of @n's region and touch every page. */
static int populate_all(const struct node *n)
{
	char *p;
	int fd;

	TRY(open_map(n, &fd, n->size, 0, (void **)&p));
	for (size_t off = 0; off < n->size; off += page)
		p[off] = 1;
	CHECK(!munmap(p, n->size) && !close(fd), "munmap/close: %s", strerror(errno));
	return R_PASS;
}

/* mmap() of @len bytes of @n must fail with ENOMEM. */
static int expect_enomem(const struct node *n, size_t len, const char *when)
{
	void *p;
	int fd;

	TRY(open_node(n, &fd));
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p == MAP_FAILED && errno == ENOMEM, "%s: mmap of %s of %s: %s, not ENOMEM", when,
	      sz(len), n->name, p == MAP_FAILED ? strerror(errno) : "it worked");
	close(fd);
	return R_PASS;
}

#define SENTINEL	0x5e5e5e5e5e5e5e5eULL

/* A pool node's "available": what is free in its region. */
static int expect_region_free(const struct node *n, unsigned long long want, const char *when)
{
	unsigned long long got;

	CHECK(!read_u64f(&got, SYSFS_MISC "/%s/available", n->name),
	      "%s: cannot read %s/%s/available: %s", when, SYSFS_MISC, n->name, strerror(errno));
	CHECK(got == want, "%s: %s has %s free in its region, expected %s", when, n->name,
	      sz(got), sz(want));
	return R_PASS;
}

/* Number of pages of @len bytes at @p whose first word is SENTINEL. */
static size_t sentinel_pages(const volatile uint64_t *p, size_t len)
{
	size_t cnt = 0;

	for (size_t off = 0; off < len; off += page)
		cnt += p[off / sizeof(*p)] == SENTINEL;
	return cnt;
}

/*
 * The two regions of one provider (TWO_REGIONS_DRIVER: the halves of BAR 2)
 * are two nodes, each with the memory of its region only. A request larger
 * than what is free in the region fails before it takes or clears any
 * memory, even though the provider's other region has room for it: seen
 * through the BAR's resource file, the free memory still holds what was
 * written there. Each node's "available" is its region's free memory. A
 * region all in use leaves the other one whole.
 */
static int two_regions_check(const struct target *t, unsigned long long bar)
{
	struct node all[MAX_NODES], *a = &all[0], *b = &all[1];
	size_t half = bar / 4, intact;
	char res[PATH_MAX];
	uint64_t *r;
	int cnt, fd, rfd;
	char *p, *q;

	wait_until((cnt = node_scan(t->bdf, all, MAX_NODES, false)) >= 2, NODE_TIMEOUT_MS,
		   WAIT_STEP_MS);
	CHECK(cnt == 2, "%d nodes have parent %s with " TWO_REGIONS_DRIVER ", expected two",
	      cnt, t->bdf);
	if (a->bar_offset > b->bar_offset) {
		a = &all[1];
		b = &all[0];
	}
	CHECK(a->pool && b->pool, "%s is %s, %s is %s: a region of another driver is a pool",
	      a->name, a->mode, b->name, b->mode);
	CHECK(a->bar_offset == 0 && b->bar_offset == bar / 2 && a->size == bar / 2 &&
	      b->size == bar / 2,
	      "%s: %s at %s, %s: %s at %s; want the two halves of the %s BAR",
	      a->name, sz(a->size), sz(a->bar_offset), b->name, sz(b->size),
	      sz(b->bar_offset), sz(bar));
	TRY(wait_avail(t->bdf, bar, "after binding " TWO_REGIONS_DRIVER));
	TRY(expect_region_free(a, a->size, "after binding"));
	TRY(expect_region_free(b, b->size, "after binding"));

	/* A sentinel in every page of the first region, all free */
	snprintf(res, sizeof(res), SYSFS_PCI "/devices/%s/resource2", t->bdf);
	rfd = open(res, O_RDWR | O_SYNC | O_CLOEXEC);
	CHECK(rfd >= 0, "open %s: %s", res, strerror(errno));
	r = mmap(NULL, a->size, PROT_READ | PROT_WRITE, MAP_SHARED, rfd, 0);
	CHECK(r != MAP_FAILED, "mmap %s: %s", res, strerror(errno));
	for (size_t off = 0; off < a->size; off += page)
		r[off / sizeof(*r)] = SENTINEL;

	/* Half of the first region in use: the other half is all it has. */
	TRY(open_map(a, &fd, half, 0, (void **)&p));
	intact = sentinel_pages(r, a->size);
	TRY(expect_enomem(a, half + page, "half of its region mapped"));
	CHECK(sentinel_pages(r, a->size) == intact && intact >= half / page,
	      "mmap of %s of %s, with %s free in its region, failed after it cleared %zu pages of the region",
	      sz(half + page), a->name, sz(half), intact - sentinel_pages(r, a->size));
	TRY(expect_region_free(a, a->size - half, "half of the first region mapped"));
	TRY(expect_region_free(b, b->size, "half of the first region mapped"));
	TRY(map_node(a, fd, half, 0, (void **)&q));
	TRY(expect_region_free(a, 0, "all of the first region mapped"));
	TRY(expect_enomem(a, page, "all of its region mapped"));
	TRY(populate_all(b));
	CHECK(!munmap(p, half) && !munmap(q, half) && !close(fd), "munmap/close: %s",
	      strerror(errno));
	CHECK(!munmap(r, a->size) && !close(rfd), "munmap/close %s: %s", res, strerror(errno));
	TRY(wait_avail(t->bdf, bar, "after unmapping both regions"));
	note("%s and %s: %s each; more than is free in a region fails and leaves its memory alone",
	     a->name, b->name, sz(a->size));
	return R_PASS;
}

static int case_two_regions(const struct target *t, const char *arg)
{
	unsigned long long bar;
	char drv[64] = "";
	struct node n;
	int r;

	if (access(TWO_REGIONS_KO, F_OK))
		return skip(TWO_REGIONS_KO " is missing (a kernel without modules?)");
	TRY(bar_len(t->bdf, 2, &bar));
	driver_of(t->bdf, drv, sizeof(drv));
	if (!existsf(SYSFS_PCI "/drivers/" TWO_REGIONS_DRIVER))
		TRY(insmod(TWO_REGIONS_KO));
	TRY(rebind(t->bdf, TWO_REGIONS_DRIVER));
	r = two_regions_check(t, bar);
	TRY(rebind(t->bdf, drv));
	CHECK(!rmmod(TWO_REGIONS_DRIVER), "rmmod " TWO_REGIONS_DRIVER ": %s", strerror(errno));
	if (*drv)
		TRY(wait_node(t, &n));
	return r;
}

/* ---- case: free-fault-stress -------------------------------------------- */

/*
 * One of the stress tasks: until @deadline, map up to 2 MiB (pool) or 32 KiB
 * (device) of @n, check that every page of a pool node reads zero when
 * first touched, dirty it, unmap. On a device node all tasks map the same
 * offsets, so its pages are faulted in by one task while another unmaps them.
 * Exit status: R_PASS, or R_FAIL after printing why; a SIGBUS kills it.
 */
static void stress_task(const struct node *n, double deadline, unsigned int seed)
{
	unsigned long iters = 0;
	int fd = open(n->dev, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		_exit(R_FAIL);
	while (mono_time() < deadline) {
		/* device: small, so that every task keeps freeing the first pages */
		size_t len = (1 + rand_r(&seed) % 8) * (n->pool ? 256 * KIB : 4 * KIB);
		char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		long long bad;

		if (p == MAP_FAILED) {
			/* the other tasks may hold the memory for a moment */
			if (errno == ENOMEM) {
				sleep_ms(1);
				continue;
			}
			fprintf(stderr, "  stress task %d: mmap %s: %s\n", getpid(), sz(len),
				strerror(errno));
			_exit(R_FAIL);
		}
		bad = n->pool ? first_nonzero(p, len) : -1;
		if (bad >= 0) {
			fprintf(stderr, "  stress task %d: byte %lld of a new %s mapping is not zero\n",
				getpid(), bad, sz(len));
			_exit(R_FAIL);
		}
		pattern_fill(p, len, seed);
		munmap(p, len);
		iters++;
	}
	fprintf(stderr, "  stress task %d: %lu mappings\n", getpid(), iters);
	_exit(R_PASS);
}

/*
 * Tasks that map, touch and unmap one region at the same time, so pages are
 * freed (pool) or unmapped (device) while others fault: no SIGBUS, every
 * pool page zero on first touch, all pool memory back at the end.
 */
static int case_free_fault_stress(const struct target *t, const char *arg)
{
	double secs = arg && *arg ? atof(arg) : 10, deadline;
	unsigned long long before;
	pid_t pids[STRESS_TASKS];
	struct node n;

	TRY(find_node(t, &n));
	if (n.pool)
		TRY(get_avail(n.bdf, &before));
	deadline = mono_time() + secs;
	fflush(NULL);
	for (int i = 0; i < STRESS_TASKS; i++) {
		pids[i] = fork();
		CHECK(pids[i] >= 0, "fork: %s", strerror(errno));
		if (!pids[i])
			stress_task(&n, deadline, (unsigned int)new_seed() + i);
	}
	TRY(wait_tasks(pids, STRESS_TASKS, "stress task"));
	if (n.pool)
		TRY(wait_avail(n.bdf, before, "after the stress tasks"));
	note("%d tasks mapped, touched and unmapped %s for %.0f s: no SIGBUS%s", STRESS_TASKS,
	     n.name, secs, n.pool ? ", all zero" : "");
	return R_PASS;
}

/* ---- case: lockdown ----------------------------------------------------- */

#define LOCKDOWN_FILE	"/sys/kernel/security/lockdown"

/*
 * Lock the kernel down (integrity), as lockdown= on the command line would:
 * a device node is raw access to its BAR, like the BAR's resource file, so
 * it can then be neither opened nor mapped, not even through a file opened
 * before; a pool node still can. There is no way back: the last case of a
 * boot.
 */
static int case_lockdown(const struct target *t, const char *arg)
{
	struct target tp;
	struct node n, pool;
	int fd, fd2;
	void *p;

	TRY(find_node_kind(t, &n, false, "lockdown does not gate it"));
	TRY(open_node(&n, &fd));
	if (access(LOCKDOWN_FILE, F_OK))
		mount("securityfs", "/sys/kernel/security", "securityfs", 0, NULL);
	CHECK(!write_str(LOCKDOWN_FILE, "integrity"), "echo integrity > %s: %s (lockdown LSM?)",
	      LOCKDOWN_FILE, strerror(errno));
	fd2 = open(n.dev, O_RDWR | O_CLOEXEC);
	CHECK(fd2 < 0 && errno == EPERM, "open %s under lockdown: %s, expected EPERM", n.dev,
	      fd2 < 0 ? strerror(errno) : "it worked");
	p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p == MAP_FAILED && errno == EPERM,
	      "mmap of %s opened before lockdown: %s, expected EPERM", n.dev,
	      p == MAP_FAILED ? strerror(errno) : "it worked");
	close(fd);
	if (!resolve_target("cmb", &tp) && find_node(&tp, &pool) == R_PASS && pool.pool) {
		TRY(open_map(&pool, &fd, page, 0, &p));
		CHECK(!munmap(p, page) && !close(fd), "munmap/close: %s", strerror(errno));
	}
	note("locked down (integrity): %s refuses open and mmap with EPERM; the pool node maps",
	     n.dev);
	return R_PASS;
}

/* ---- case: odirect ------------------------------------------------------ */

#define ODIRECT_CHUNKS	4

/* NVMe A -> mapping -> NVMe B with O_DIRECT, each I/O @size bytes. */
static int case_odirect(const struct target *t, const char *arg)
{
	unsigned long long size, asize, bsize;
	char a_dev[80], b_dev[80];
	uint64_t seed = new_seed();
	off_t map_off, disk_off;
	char *orig, *back, *map;
	struct node n;
	long long bad;
	size_t len;
	int afd, bfd, fd;

	CHECK(!parse_size(arg, &size) && size && !(size % page), "bad I/O size '%s'", arg);
	len = ODIRECT_CHUNKS * size;
	TRY(find_node(t, &n));
	TRY(open_disk("DISK_A", a_dev, sizeof(a_dev), &afd));
	TRY(open_disk("DISK_B", b_dev, sizeof(b_dev), &bfd));
	/* a disk range of its own per target and size: [4 * size, 8 * size) */
	disk_off = t->index * 64 * MIB + ODIRECT_CHUNKS * size;
	map_off = n.pool ? 0 : 2 * MIB;		/* device node: not at offset 0 */
	CHECK(!blockdev_size(afd, &asize) && !blockdev_size(bfd, &bsize) &&
	      asize >= disk_off + len && bsize >= disk_off + len,
	      "%s/%s too small for %s at %lld", a_dev, b_dev, sz(len), (long long)disk_off);
	CHECK(map_off + len <= n.size, "%s: region too small", n.name);
	orig = alloc_aligned(len);
	back = alloc_aligned(len);
	CHECK(orig && back, "out of memory");
	note("seed %llu: %s -> %s at offset %s -> %s, disk offset %s, %d I/Os of %s",
	     (unsigned long long)seed, a_dev, n.dev, sz(map_off), b_dev, sz(disk_off),
	     ODIRECT_CHUNKS, sz(size));

	pattern_fill(orig, len, seed);
	CHECK(!pwrite_full(afd, orig, len, disk_off), "write %s: %s", a_dev, strerror(errno));
	pattern_fill(back, len, ~seed);		/* B and the mapping start out different */
	CHECK(!pwrite_full(bfd, back, len, disk_off), "write %s: %s", b_dev, strerror(errno));
	TRY(open_map(&n, &fd, len, map_off, (void **)&map));
	pattern_fill(map, len, seed + 1);

	for (int i = 0; i < ODIRECT_CHUNKS; i++)
		CHECK(!pread_full(afd, map + i * size, size, disk_off + i * size),
		      "O_DIRECT read %s -> %s, I/O %d: %s (%s)", a_dev, n.dev, i, strerror(errno),
		      ename(errno));
	bad = first_diff(map, orig, len);
	CHECK(bad < 0, "mapping differs from %s at byte %lld after the O_DIRECT read", a_dev, bad);
	for (int i = 0; i < ODIRECT_CHUNKS; i++)
		CHECK(!pwrite_full(bfd, map + i * size, size, disk_off + i * size),
		      "O_DIRECT write %s -> %s, I/O %d: %s (%s)", n.dev, b_dev, i, strerror(errno),
		      ename(errno));
	CHECK(!pread_full(bfd, back, len, disk_off), "read back %s: %s", b_dev, strerror(errno));
	bad = first_diff(back, orig, len);
	CHECK(bad < 0, "%s differs from %s at byte %lld", b_dev, a_dev, bad);
	note("%s byte-exact through %s", sz(len), n.dev);
	free(orig);
	free(back);
	return R_PASS;
}

/* ---- case: unbind-sigbus ------------------------------------------------ */

/* mmap on a file whose device is gone must fail, or at least not reach memory. */
static int check_stale_fd(int fd, const char *when)
{
	void *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	int sig;

	if (p == MAP_FAILED) {
		note("%s: mmap of the stale file refused (%s)", when, ename(errno));
		return R_PASS;
	}
	sig = touch(p, false);
	munmap(p, page);
	CHECK(sig == SIGBUS, "%s: mmap of the stale file succeeded and gave %s", when,
	      sig ? "SIGSEGV" : "accessible memory");
	note("%s: mmap of the stale file works but raises SIGBUS", when);
	return R_PASS;
}

/*
 * How a provider is taken away and brought back: its driver unbinds and
 * binds again, or QEMU removes the device and adds it again.
 */
struct takeaway {
	const char *gone, *back;	/* "after ..." in messages */
	int (*remove)(const struct target *t, const char *drv);
	int (*restore)(const struct target *t, const char *drv);
};

/* The provider of @t is back after a bind or a plug: its node, its disk. */
static int wait_provider_back(const struct target *t, const char *drv, struct node *n)
{
	TRY(wait_node(t, n));
	return strcmp(drv, "nvme") ? R_PASS : wait_disk(t->bdf);
}

/*
 * Take the provider of @t away while its node is open twice and mapped: it
 * goes promptly, the mapping then raises SIGBUS, files close, nothing
 * leaks; once it is back, its new node works and the old file stays dead.
 */
static int take_away(const struct target *t, const struct takeaway *how)
{
	unsigned long long before;
	uint64_t seed = new_seed();
	const size_t len = MIB;
	struct node n, fresh;
	char drv[64], *p;
	int fd, stale_fd;

	TRY(find_node(t, &n));
	CHECK(!driver_of(t->bdf, drv, sizeof(drv)), "%s has no driver", t->bdf);
	TRY(get_avail(t->bdf, &before));
	TRY(open_map(&n, &fd, len, n.pool ? 0 : MIB, (void **)&p));
	TRY(open_node(&n, &stale_fd));
	pattern_fill(p, len, seed);
	TRY(expect_pattern(p, len, seed, "before"));

	TRY(how->remove(t, drv));
	TRY(wait_node_gone(&n, how->gone));
	TRY(expect_sigbus(p, false, how->gone));
	TRY(expect_sigbus(p + len - 8, true, how->gone));
	TRY(check_stale_fd(fd, how->gone));
	CHECK(!munmap(p, len) && !close(fd), "munmap/close %s: %s", how->gone, strerror(errno));

	TRY(how->restore(t, drv));
	TRY(wait_provider_back(t, drv, &fresh));
	TRY(check_stale_fd(stale_fd, how->back));	/* old file, new device */
	CHECK(!close(stale_fd), "close of the stale file: %s", strerror(errno));
	TRY(node_smoke(&fresh));
	return wait_avail(t->bdf, before, how->back);
}

static int unbind_driver(const struct target *t, const char *drv)
{
	char now[64];

	TRY(driver_write(drv, "unbind", t->bdf));
	CHECK(driver_of(t->bdf, now, sizeof(now)), "%s still bound to %s after unbind", t->bdf, now);
	return R_PASS;
}

static int bind_driver(const struct target *t, const char *drv)
{
	return driver_write(drv, "bind", t->bdf);
}

/* Unbind the driver that owns the region while a mapping exists. */
static int case_unbind_sigbus(const struct target *t, const char *arg)
{
	static const struct takeaway unbind = {
		"after unbind", "after rebind", unbind_driver, bind_driver
	};

	return take_away(t, &unbind);
}

/* ---- the host agent: scripts/vm serves requests on the second serial port */

#define HOST_TTY		"/dev/ttyS1"
#define HOST_TIMEOUT_MS		60000
#define HOTPLUG_TIMEOUT_MS	30000	/* pciehp waits 5 s after the button */

/*
 * Ask the host (scripts/vm) to act on the VM: "unplug ID", "plug ID",
 * "throttle ID BYTES_PER_S". The host answers "ok" or "error <why>".
 */
static int __printf(1, 2) host_cmd(const char *fmt, ...)
{
	char cmd[128], reply[256];
	struct termios tio;
	size_t n = 0;
	int fd;

	FORMAT_ARGS(cmd, fmt);
	fd = open(HOST_TTY, O_RDWR | O_NOCTTY | O_CLOEXEC);
	CHECK(fd >= 0, "open %s: %s (the host agent's port: run the VM with scripts/vm)",
	      HOST_TTY, strerror(errno));
	if (!tcgetattr(fd, &tio)) {
		cfmakeraw(&tio);
		tcsetattr(fd, TCSANOW, &tio);
	}
	tcflush(fd, TCIFLUSH);
	note("host: %s", cmd);
	if (dprintf(fd, "%s\n", cmd) < 0) {
		close(fd);
		return fail("write to %s: %s", HOST_TTY, strerror(errno));
	}
	for (double end = mono_time() + HOST_TIMEOUT_MS / 1000.0; n < sizeof(reply) - 1;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int left = (int)((end - mono_time()) * 1000);

		if (left <= 0 || poll(&pfd, 1, left) <= 0 || read(fd, reply + n, 1) != 1)
			break;
		if (reply[n] == '\n')
			break;
		if (reply[n] != '\r')
			n++;
	}
	reply[n] = '\0';
	close(fd);
	CHECK(n, "host: no answer to '%s' within %d s", cmd, HOST_TIMEOUT_MS / 1000);
	CHECK(!strcmp(reply, "ok"), "host: '%s' -> %s", cmd, reply);
	return R_PASS;
}

static int case_host(const struct target *t, const char *cmd)
{
	return host_cmd("%s", cmd);
}

static int wait_pci(const char *bdf, bool present, const char *after)
{
	CHECK(wait_until(existsf(SYSFS_PCI "/devices/%s", bdf) == present, HOTPLUG_TIMEOUT_MS,
			 WAIT_STEP_MS),
	      "PCI device %s %s %d s after %s", bdf, present ? "did not appear" : "still there",
	      HOTPLUG_TIMEOUT_MS / 1000, after);
	return R_PASS;
}

/* ---- case: bind-cycles -------------------------------------------------- */

/*
 * Unbind and bind the region's driver COUNT times; map, write and read
 * back before each unbind, every other time keeping the mapping across it.
 */
static int case_bind_cycles(const struct target *t, const char *arg)
{
	unsigned long long cycles, before;
	uint64_t seed = new_seed();
	const size_t len = MIB;
	struct node n;
	char drv[64];
	double start = mono_time();
	void *p;
	int fd;

	CHECK(!parse_size(arg, &cycles) && cycles, "bad cycle count '%s'", arg);
	CHECK(!driver_of(t->bdf, drv, sizeof(drv)), "%s has no driver", t->bdf);
	TRY(get_avail(t->bdf, &before));
	for (unsigned long long i = 0; i < cycles; i++) {
		bool keep = i % 2;

		TRY(find_node(t, &n));
		TRY(open_map(&n, &fd, len, 0, &p));
		pattern_fill(p, len, seed + i);
		TRY(expect_pattern(p, len, seed + i, "before unbind"));
		if (!keep)
			CHECK(!munmap(p, len) && !close(fd), "munmap/close: %s", strerror(errno));
		TRY(driver_write(drv, "unbind", t->bdf));
		TRY(wait_node_gone(&n, "unbind"));
		if (keep) {
			TRY(expect_sigbus(p, true, "after unbind"));
			CHECK(!munmap(p, len) && !close(fd), "munmap/close: %s", strerror(errno));
		}
		TRY(bind_driver(t, drv));
		TRY(wait_provider_back(t, drv, &n));
	}
	note("%llu unbind/bind cycles in %.1f s", cycles, mono_time() - start);
	return wait_avail(t->bdf, before, "after the cycles");
}

/* ---- case: unbind-inflight ---------------------------------------------- */

#define INFLIGHT_LEN	(8 * MIB)
#define INFLIGHT_BPS	(2 * MIB)	/* the host throttles disk B: a 4 s read */
#define INFLIGHT_DISK_OFF (160 * MIB)

struct reader {
	char dev[80];
	int fd;
	void *buf;
	ssize_t ret;
	int err;
	double done_at;
	int done;
};

static void *reader_thread(void *arg)
{
	struct reader *r = arg;

	r->ret = pread(r->fd, r->buf, INFLIGHT_LEN, INFLIGHT_DISK_OFF);
	r->err = r->ret < 0 ? errno : 0;
	r->done_at = mono_time();
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static bool reader_done(struct reader *r)
{
	return __atomic_load_n(&r->done, __ATOMIC_ACQUIRE);
}

/* Reads in flight on block device @dev (/dev/NAME), or -1. */
static long inflight_reads(const char *dev)
{
	unsigned long long rd, wr;
	char buf[64];

	if (read_strf(buf, sizeof(buf), "/sys/block/%s/inflight", dev + 5) ||
	    sscanf(buf, "%llu %llu", &rd, &wr) != 2)
		return -1;
	return rd;
}

/*
 * Unbind the region's driver while an O_DIRECT read from (throttled) disk B
 * into the mapping is in flight: the unbind returns once the I/O is done,
 * the read ends, the mapping then raises SIGBUS, nothing leaks.
 */
static int unbind_during_read(const struct target *t, const struct node *n,
			      const char *drv, struct reader *r)
{
	double t_unbind, secs;
	pthread_t th;
	long inflight = 0;
	int ret;

	CHECK(!pthread_create(&th, NULL, reader_thread, r), "pthread_create failed");
	wait_until(reader_done(r) || (inflight = inflight_reads(r->dev)) > 0, 5000, WAIT_STEP_MS);
	sleep_ms(200);
	if (inflight <= 0 || reader_done(r)) {
		pthread_join(th, NULL);
		return fail("the O_DIRECT read was not in flight (inflight %ld, done %d, %zd bytes)",
			    inflight, reader_done(r), r->ret);
	}
	note("%ld reads in flight from %s into %s; unbinding %s from %s", inflight,
	     r->dev, n->dev, t->bdf, drv);
	t_unbind = mono_time();
	ret = driver_write(drv, "unbind", t->bdf);
	secs = mono_time() - t_unbind;
	pthread_join(th, NULL);
	TRY(ret);
	note("the read returned %zd (%s) %.2f s after the unbind started; the unbind took %.2f s",
	     r->ret, r->ret < 0 ? ename(r->err) : "bytes", r->done_at - t_unbind, secs);
	CHECK(r->done_at > t_unbind, "the read ended before the unbind started");
	CHECK(r->ret >= 0 || r->err == EFAULT,
	      "the interrupted read failed with %s, expected bytes or EFAULT", ename(r->err));
	return R_PASS;
}

static int case_unbind_inflight(const struct target *t, const char *arg)
{
	struct reader r = { .fd = -1 };
	unsigned long long before;
	struct node n, fresh;
	char drv[64];
	int fd, ret;

	TRY(find_node(t, &n));
	CHECK(!driver_of(t->bdf, drv, sizeof(drv)), "%s has no driver", t->bdf);
	TRY(get_avail(t->bdf, &before));
	TRY(open_disk("DISK_B", r.dev, sizeof(r.dev), &r.fd));
	TRY(open_map(&n, &fd, INFLIGHT_LEN, n.pool ? 0 : 4 * MIB, &r.buf));
	pattern_fill(r.buf, INFLIGHT_LEN, 1);	/* every page present */

	TRY(host_cmd("throttle disk %llu", INFLIGHT_BPS));
	ret = unbind_during_read(t, &n, drv, &r);
	TRY(host_cmd("throttle disk 0"));
	TRY(ret);

	TRY(wait_node_gone(&n, "unbind"));
	TRY(expect_sigbus(r.buf, false, "after unbind"));
	CHECK(!munmap(r.buf, INFLIGHT_LEN) && !close(fd) && !close(r.fd),
	      "munmap/close after unbind: %s", strerror(errno));
	TRY(bind_driver(t, drv));
	TRY(wait_provider_back(t, drv, &fresh));
	TRY(node_smoke(&fresh));
	return wait_avail(t->bdf, before, "after rebind");
}

/* ---- case: hotunplug ---------------------------------------------------- */

static int unplug_device(const struct target *t, const char *drv)
{
	TRY(host_cmd("unplug %s", t->label));
	return wait_pci(t->bdf, false, "device_del");
}

/* Whether @bdf is bound to a driver (into @drv); if not, probe it again */
static bool bound_or_probe(const char *bdf, char *drv, size_t len)
{
	if (!driver_of(bdf, drv, len))
		return true;
	write_str(SYSFS_PCI "/drivers_probe", bdf);
	return false;
}

static int plug_device(const struct target *t, const char *drv)
{
	char now[64] = "";

	TRY(host_cmd("plug %s", t->label));
	TRY(wait_pci(t->bdf, true, "device_add"));
	if (strcmp(drv, MODULE_NAME))
		return R_PASS;		/* nvme binds by itself */
	/*
	 * A new device: bind it as case bind did. It shows in sysfs before the
	 * kernel has assigned its BARs and lets drivers bind it: set the
	 * override and probe until it is bound.
	 */
	TRY(set_override(t->bdf, MODULE_NAME));
	wait_until(bound_or_probe(t->bdf, now, sizeof(now)), HOTPLUG_TIMEOUT_MS, 100);
	CHECK(!strcmp(now, MODULE_NAME), "%s not bound to " MODULE_NAME " %d s after device_add",
	      t->bdf, HOTPLUG_TIMEOUT_MS / 1000);
	return R_PASS;
}

/*
 * QEMU removes the device (device_del, PCIe native hotplug) while its node
 * is open and mapped, then adds it again (device_add).
 */
static int case_hotunplug(const struct target *t, const char *arg)
{
	static const struct takeaway hotplug = {
		"after hot-unplug", "after re-plug", unplug_device, plug_device
	};

	CHECK(t->index < NR_RIG_TARGETS,
	      "%s is not a device of the rig: hot-unplug needs cmb or ivshmem", t->bdf);
	return take_away(t, &hotplug);
}

/* ---- case: rmmod-busy --------------------------------------------------- */

static int expect_rmmod_busy(const char *ko, const char *state)
{
	int err;

	if (!rmmod(MODULE_NAME)) {
		int r = fail("rmmod succeeded with %s", state);

		insmod(ko);	/* keep the rest of the suite going */
		return r;
	}
	err = errno;
	CHECK(err == EBUSY || err == EWOULDBLOCK, "rmmod with %s: %s, expected EBUSY or EAGAIN",
	      state, ename(err));
	note("rmmod with %s: %s", state, ename(err));
	return R_PASS;
}

/* After insmod every node that existed before comes back, and works. */
static int restore_nodes(const struct node *old, int cnt)
{
	for (int i = 0; i < cnt; i++) {
		struct target t = { .bar = -1 };
		struct node n;
		char drv[64];

		scopy(t.label, sizeof(t.label), old[i].name);
		scopy(t.bdf, sizeof(t.bdf), old[i].bdf);
		/* driver_override normally rebinds our devices at insmod; else probe */
		if (!old[i].pool && driver_of(t.bdf, drv, sizeof(drv)))
			TRY(write_timed(SYSFS_PCI "/drivers_probe", t.bdf));
		TRY(wait_node(&t, &n));
		TRY(node_smoke(&n));
	}
	return R_PASS;
}

static int case_rmmod_busy(const struct target *t, const char *arg)
{
	const char *ko = env_or("P2PMEM_KO", "/lib/modules/" MODULE_NAME ".ko");
	struct node nodes[MAX_NODES];
	struct avail prov[MAX_PROVIDERS];
	int cnt, np, fd, err = 0;
	void *p;

	if (access(ko, R_OK))
		return skip("no %s: the driver is built in", ko);
	CHECK(module_loaded(), MODULE_NAME " is not loaded");
	cnt = node_scan(NULL, nodes, MAX_NODES, false);
	CHECK(cnt > 0 && cnt <= MAX_NODES, "%d nodes before rmmod", cnt);
	np = avail_scan(prov, MAX_PROVIDERS);

	TRY(open_node(&nodes[0], &fd));
	TRY(expect_rmmod_busy(ko, "a node open"));
	TRY(map_node(&nodes[0], fd, page, 0, &p));
	close(fd);
	TRY(expect_rmmod_busy(ko, "a node mapped (file closed)"));
	CHECK(!munmap(p, page), "munmap: %s", strerror(errno));

	/* the last file reference may drop a moment later (deferred fput) */
	wait_until(!(err = rmmod(MODULE_NAME) ? errno : 0), 2000, WAIT_STEP_MS);
	CHECK(!module_loaded(), "rmmod after close and munmap failed: %s", ename(err));
	note("rmmod succeeded");
	for (int i = 0; i < cnt; i++)
		TRY(wait_node_gone(&nodes[i], "rmmod"));

	TRY(insmod(ko));
	TRY(restore_nodes(nodes, cnt));
	return avail_compare(prov, np, "after rmmod and insmod");
}

/* ---- case: no-leak; helpers: snapshot, leak-check, list ----------------- */

/*
 * What must be as it was after every case: each provider's free p2p memory,
 * the nodes (parent, mode, size), the module's reference count, and no task
 * stuck in D state.
 */
struct state {
	struct avail prov[MAX_PROVIDERS];
	int np;
	struct node nodes[MAX_NODES];
	int nn;
	long long refcnt;		/* -1: not a loaded module */
};

static long long module_refcnt(void)
{
	unsigned long long v;

	return read_u64f(&v, "/sys/module/" MODULE_NAME "/refcnt") ? -1 : (long long)v;
}

static struct state *state_scan(struct state *st)
{
	st->np = avail_scan(st->prov, MAX_PROVIDERS);
	st->nn = node_scan(NULL, st->nodes, MAX_NODES, false);
	if (st->nn > MAX_NODES)
		st->nn = MAX_NODES;
	st->refcnt = module_refcnt();
	return st;
}

static int state_load(const char *file, struct state *st)
{
	FILE *f = fopen(file, "re");
	char line[256], mode[16];
	struct node *n;

	CHECK(f, "open snapshot %s: %s", file, strerror(errno));
	memset(st, 0, sizeof(*st));
	st->refcnt = -1;
	while (fgets(line, sizeof(line), f)) {
		n = &st->nodes[st->nn];
		if (st->np < MAX_PROVIDERS &&
		    sscanf(line, "avail %31s %llu", st->prov[st->np].bdf, &st->prov[st->np].bytes) == 2)
			st->np++;
		else if (st->nn < MAX_NODES &&
			 sscanf(line, "node %31s %15s %llu", n->bdf, mode, &n->size) == 3) {
			scopy(n->mode, sizeof(n->mode), mode);
			st->nn++;
		} else if (sscanf(line, "refcnt %lld", &st->refcnt) != 1) {
			fclose(f);
			return fail("snapshot %s: cannot parse '%s'", file, line);
		}
	}
	fclose(f);
	CHECK(st->np > 0, "snapshot %s lists no provider", file);
	return R_PASS;
}

static int case_snapshot(const struct target *t, const char *file)
{
	FILE *f = fopen(file, "we");
	struct state st;

	CHECK(f, "create %s: %s", file, strerror(errno));
	state_scan(&st);
	for (int i = 0; i < st.np; i++)
		fprintf(f, "avail %s %llu\n", st.prov[i].bdf, st.prov[i].bytes);
	for (int i = 0; i < st.nn; i++)
		fprintf(f, "node %s %s %llu\n", st.nodes[i].bdf, st.nodes[i].mode, st.nodes[i].size);
	fprintf(f, "refcnt %lld\n", st.refcnt);
	CHECK(!fclose(f), "write %s: %s", file, strerror(errno));
	note("snapshot: %d providers, %d nodes, module refcnt %lld", st.np, st.nn, st.refcnt);
	return R_PASS;
}

/* The nodes of @want and @have are the same (parent, mode, size): "" or why not. */
static const char *nodes_differ(const struct state *want, const struct state *have)
{
	static char why[160];

	if (want->nn != have->nn) {
		snprintf(why, sizeof(why), "%d nodes, expected %d", have->nn, want->nn);
		return why;
	}
	for (int i = 0; i < want->nn; i++) {
		const struct node *w = &want->nodes[i];
		int found = 0;

		for (int j = 0; j < have->nn; j++)
			found += !strcmp(w->bdf, have->nodes[j].bdf) &&
				 !strcmp(w->mode, have->nodes[j].mode) && w->size == have->nodes[j].size;
		if (found != 1) {
			snprintf(why, sizeof(why), "%d nodes for %s (%s, %s), expected 1", found,
				 w->bdf, w->mode, sz(w->size));
			return why;
		}
	}
	return "";
}

/* Tasks in uninterruptible sleep (D): a hung unbind or I/O leaves one behind. */
static int dstate_tasks(char *out, size_t len)
{
	glob_t g;
	int cnt = 0;

	out[0] = '\0';
	if (glob("/proc/[0-9]*/task/[0-9]*/stat", 0, NULL, &g))
		return 0;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char stat[512], *rp;

		if (read_strf(stat, sizeof(stat), "%s", g.gl_pathv[i]))
			continue;
		rp = strrchr(stat, ')');
		if (!rp || rp[1] != ' ' || rp[2] != 'D')
			continue;
		cnt++;
		rp[1] = '\0';			/* "tid (comm)" */
		if (strlen(out) + strlen(stat) + 3 < len) {
			strcat(out, stat);
			strcat(out, "; ");
		}
	}
	globfree(&g);
	return cnt;
}

/* Everything as in the snapshot @file; waits a little for late releases. */
static int case_leak_check(const struct target *t, const char *file)
{
	struct state want, have;
	const char *why = "";
	char list[256];

	TRY(state_load(file, &want));
	TRY(avail_compare(want.prov, want.np, "compared with the snapshot"));
	CHECK(wait_until(!*(why = nodes_differ(&want, state_scan(&have))), NODE_TIMEOUT_MS,
			 WAIT_STEP_MS), "node list: %s", why);
	CHECK(wait_until((have.refcnt = module_refcnt()) == want.refcnt, AVAIL_TIMEOUT_MS,
			 WAIT_STEP_MS),
	      MODULE_NAME " refcnt %lld, expected %lld", have.refcnt, want.refcnt);
	/* a look reads the state of every task: once a second */
	CHECK(wait_until(!dstate_tasks(list, sizeof(list)), 5000, 1000),
	      "tasks stuck in D state: %s", list);
	return R_PASS;
}

static int case_list(const struct target *t, const char *arg)
{
	struct node nodes[MAX_NODES];
	int cnt = node_scan(NULL, nodes, MAX_NODES, false);
	char a[80], b[80];

	printf("%-14s %-13s %-7s %-4s %-11s %-8s %s\n", "node", "PCI parent", "mode", "bar",
	       "bar_offset", "size", "provider available");
	for (int i = 0; i < cnt && i < MAX_NODES; i++) {
		unsigned long long avail;
		char av[32] = "-";

		if (!read_avail(nodes[i].bdf, &avail))
			snprintf(av, sizeof(av), "%s", sz(avail));
		printf("%-14s %-13s %-7s %-4llu %-11llu %-8s %s\n", nodes[i].dev, nodes[i].bdf,
		       nodes[i].mode, nodes[i].bar, nodes[i].bar_offset, sz(nodes[i].size), av);
	}
	if (!cnt)
		printf("(no /dev/p2pmem* nodes)\n");
	printf("disk A: %s (PCI %s)   disk B: %s (PCI %s)\n",
	       disk_of_bdf(rig_bdf("DISK_A"), a, sizeof(a)) ? a : "none", rig_bdf("DISK_A"),
	       disk_of_bdf(rig_bdf("DISK_B"), b, sizeof(b)) ? b : "none", rig_bdf("DISK_B"));
	return R_PASS;
}

/* ---- dispatch ----------------------------------------------------------- */

struct subcmd {
	const char *name;
	const char *args;	/* "TARGET", "TARGET SIZE", "FILE" or "" */
	bool helper;		/* prints no result line */
	int (*run)(const struct target *t, const char *arg);
	const char *help;
};

static const struct subcmd subcmds[] = {
	{ "builtin-node", "", false, case_builtin_node,
	  "driver built in (not a module) and the CMB has a valid node" },
	{ "bind", "TARGET", false, case_bind,
	  "bind TARGET to " MODULE_NAME " with driver_override; its node appears" },
	{ "nodes", "TARGET", false, case_nodes,
	  "TARGET's node: char dev 0600 root, mode/bar/size; one node per region" },
	{ "two-mappings", "TARGET", false, case_two_mappings,
	  "device: same memory via 2 mmaps/files/processes at 3 offsets; pool: separate zeroed" },
	{ "bar-alias", "TARGET", false, case_bar_alias,
	  "device: node offset X == resourceN at bar_offset + X" },
	{ "rawio", "TARGET", false, case_rawio,
	  "device node: open needs CAP_SYS_RAWIO (EPERM without); pool node: it does not" },
	{ "reset", "TARGET", false, case_reset,
	  "device: a reset via sysfs revokes the mapping, data is there on the next access" },
	{ "reset-race", "TARGET", false, case_reset_race,
	  "device: 4 tasks read their mappings while 10 resets run: no SIGBUS, data intact" },
	{ "no-stale-data", "TARGET", false, case_no_stale_data,
	  "pool: every new user (this and other processes) gets zeroed memory" },
	{ "kill-populate", "TARGET", false, case_kill_populate,
	  "pool: a task killed while populating a large mapping goes at once, no leak" },
	{ "kill-copy", "TARGET", false, case_kill_copy,
	  "pool: the same with read() into it, into memory in runs of 3 pages" },
	{ "two-regions", "TARGET", false, case_two_regions,
	  "its BAR 2 as two regions of one provider: a node each, each only its memory" },
	{ "free-fault-stress", "TARGET [SECONDS]", false, case_free_fault_stress,
	  "4 tasks map, touch and unmap at once (10 s): no SIGBUS; pool: zeroed, no leak" },
	{ "lockdown", "TARGET", false, case_lockdown,
	  "device: locked down, open and mmap fail with EPERM (irreversible: last case)" },
	{ "odirect", "TARGET SIZE", false, case_odirect,
	  "NVMe A -> mapping -> NVMe B with O_DIRECT I/Os of SIZE, byte-exact" },
	{ "unbind-sigbus", "TARGET", false, case_unbind_sigbus,
	  "unbind while mapped: returns, SIGBUS, close works, rebind works, no leak" },
	{ "rmmod-busy", "", false, case_rmmod_busy,
	  "rmmod fails while open or mapped, works after; insmod restores the nodes" },
	{ "bind-cycles", "TARGET COUNT", false, case_bind_cycles,
	  "COUNT unbind/bind cycles, mapped (and every other time kept mapped) in between" },
	{ "unbind-inflight", "TARGET", false, case_unbind_inflight,
	  "unbind during an O_DIRECT read from throttled NVMe B into the mapping" },
	{ "hotunplug", "TARGET", false, case_hotunplug,
	  "QEMU device_del while mapped: SIGBUS, node gone; device_add: node back" },
	{ "no-leak", "FILE", false, case_leak_check,
	  "as in snapshot FILE: available, nodes, module refcnt; no task in D state" },
	{ "host", "COMMAND", true, case_host,
	  "(helper) ask scripts/vm's host agent: unplug ID, plug ID, throttle ID BPS" },
	{ "snapshot", "FILE", true, case_snapshot,
	  "(helper) save available, nodes and module refcnt to FILE" },
	{ "leak-check", "FILE", true, case_leak_check,
	  "(helper) compare with FILE; exit 1 on a difference" },
	{ "list", "", true, case_list,
	  "(helper) show the nodes, their PCI parents and the disks" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: p2pmem-check CASE [ARGS]\n"
		"TARGET: cmb | ivshmem | a PCI address (env P2PMEM_CMB_BDF, P2PMEM_IVSHMEM_BDF,\n"
		"        P2PMEM_DISK_A_BDF, P2PMEM_DISK_B_BDF, P2PMEM_KO override the defaults)\n");
	for (size_t i = 0; i < ARRAY_SIZE(subcmds); i++)
		fprintf(f, "  %-15s %-12s %s\n", subcmds[i].name, subcmds[i].args,
			subcmds[i].help);
}

int main(int argc, char **argv)
{
	const struct subcmd *sc = NULL;
	struct target tgt, *t = NULL;
	const char *arg = NULL;
	int want, r;

	page = (size_t)sysconf(_SC_PAGESIZE);
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(subcmds) && !sc; i++)
		if (!strcmp(argv[1], subcmds[i].name))
			sc = &subcmds[i];
	if (!sc) {
		fprintf(stderr, "p2pmem-check: unknown case '%s'\n", argv[1]);
		usage(stderr);
		return 2;
	}

	set_case("%s", sc->name);
	want = !sc->args[0] ? 0 : strchr(sc->args, ' ') ? 2 : 1;
	if (argc - 2 != want) {
		r = fail("usage: p2pmem-check %s %s", sc->name, sc->args);
	} else if (!strncmp(sc->args, "TARGET", 6) && resolve_target(argv[2], &tgt)) {
		r = fail("unknown TARGET '%s': cmb, ivshmem (with P2PMEM_CMB_BDF, P2PMEM_IVSHMEM_BDF set) or a PCI address",
			 argv[2]);
	} else {
		if (!strncmp(sc->args, "TARGET", 6)) {
			t = &tgt;
			arg = want == 2 ? argv[3] : NULL;
			set_case("%s%s%s-%s", sc->name, arg ? "-" : "", arg ? arg : "", t->label);
		} else if (want) {
			arg = argv[2];
		}
		r = sc->run(t, arg);
	}
	if (!sc->helper)
		print_result(r);
	return r == R_FAIL ? 1 : 0;
}
