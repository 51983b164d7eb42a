/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lib.h - the guest library of the p2pmem_pci test programs (p2pmem-check.c,
 * p2pmem-bench.c, p2pcopy.c); lib.sh is its shell side. Each program is one
 * translation unit, so everything here is static inline.
 */
#ifndef P2PMEM_TESTS_LIB_H
#define P2PMEM_TESTS_LIB_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define KIB	1024ULL
#define MIB	(1024ULL * KIB)

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define __printf(a, b)	__attribute__((format(printf, a, b)))

#define SYSFS_MISC		"/sys/class/misc"
#define SYSFS_PCI		"/sys/bus/pci"
#define MAX_NODES		32
#define AVAIL_TIMEOUT_MS	5000	/* freed p2p memory is back in the pool */
#define WAIT_STEP_MS		10	/* wait_until()'s usual step */

/* ---- strings and numbers ------------------------------------------------ */

/* scopy() - copy @src into @dst of @len bytes, truncated, always terminated */
static inline void scopy(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* env_or() - environment variable @name, or @def when unset or empty */
static inline const char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);

	return v && *v ? v : def;
}

/* ename() - the name of errno value @e ("ENOMEM"), "E?" if it has none */
static inline const char *ename(int e)
{
	const char *s = strerrorname_np(e);

	return s ? s : "E?";
}

/**
 * parse_size() - parse "4096", "0x1000", "4k", "1m" or "2g" (binary multiples)
 * Return: 0, or -1 if @s is not a size or does not fit 64 bits.
 */
static inline int parse_size(const char *s, unsigned long long *out)
{
	static const char units[] = "kmg";
	unsigned long long v, mult = 1;
	const char *u;
	int base = 10;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		base = 16;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno || end == s)
		return -1;
	u = *end ? strchr(units, tolower((unsigned char)*end)) : NULL;
	if (u) {
		mult <<= 10 * (u - units + 1);
		end++;
	}
	if (*end || v > ULLONG_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

/* sz() - "64 MiB", "4 KiB", "1000 B", "0" for messages: 8 buffers used in turn */
static inline const char *sz(unsigned long long v)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB" };
	static char buf[8][32];
	static int i;
	int u = 3;

	i = (i + 1) % 8;
	if (!v)
		return "0";
	while (v % (1ULL << (10 * u)))
		u--;
	snprintf(buf[i], sizeof(buf[i]), "%llu %s", v >> (10 * u), units[u]);
	return buf[i];
}

/*
 * FORMAT_ARGS() - in a function whose last arguments are (@fmt, ...), format
 * them into the array @buf. Return: 0, or -1 with errno ENAMETOOLONG.
 */
#define FORMAT_ARGS(buf, fmt) ({					\
	va_list ap_;							\
	int n_;								\
									\
	va_start(ap_, fmt);						\
	n_ = vsnprintf(buf, sizeof(buf), fmt, ap_);			\
	va_end(ap_);							\
	n_ >= (int)sizeof(buf) ? (errno = ENAMETOOLONG, -1) : 0;	\
})

/* ---- results ------------------------------------------------------------ */

/*
 * A program runs one or more cases, one after the other: set_case() starts
 * one, fail() and skip() give its reason, print_result() its one line
 *
 *	P2PMEM-RESULT: PASS|FAIL|SKIP <case> [reason]
 *
 * on stdout. Diagnostics (note(), fail()) go to stderr.
 */
enum { R_PASS, R_FAIL, R_SKIP };

static char case_name[128];
static char reason[512];

/* set_case() - start the case named by @fmt: no reason yet */
static inline void __printf(1, 2) set_case(const char *fmt, ...)
{
	FORMAT_ARGS(case_name, fmt);
	reason[0] = '\0';
}

/* note() - a diagnostic line of the case on stderr */
static inline void __printf(1, 2) note(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "  [%s] ", case_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/**
 * fail() - print a failure of the case; the first is its reason
 * Return: R_FAIL.
 */
static inline int __printf(1, 2) fail(const char *fmt, ...)
{
	char msg[4096];

	FORMAT_ARGS(msg, fmt);
	if (!reason[0])
		scopy(reason, sizeof(reason), msg);
	note("FAIL: %s", msg);
	return R_FAIL;
}

/**
 * skip() - the reason why the case is skipped
 * Return: R_SKIP.
 */
static inline int __printf(1, 2) skip(const char *fmt, ...)
{
	FORMAT_ARGS(reason, fmt);
	return R_SKIP;
}

/* print_result() - the result line of the case: @r is R_PASS, R_FAIL or R_SKIP */
static inline void print_result(int r)
{
	static const char *const verdict[] = { "PASS", "FAIL", "SKIP" };

	for (char *p = reason; *p; p++)
		if (*p == '\n')
			*p = ' ';
	printf("P2PMEM-RESULT: %s %s%s%s\n", verdict[r], case_name,
	       reason[0] ? " " : "", reason);
	fflush(stdout);
}

/* ---- time --------------------------------------------------------------- */

static inline double mono_time(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/**
 * wait_until() - poll until the expression @cond is true, for at most
 * @timeout_ms (by the clock), as the kernel's read_poll_timeout() does
 * @cond: looked at once, then again every @step_ms until it holds or the
 *	time is up; it may keep what it saw in the caller's variables
 * @timeout_ms: how long to wait
 * @step_ms: the sleep between two looks: WAIT_STEP_MS, or longer where a
 *	look acts (a probe) or costs much
 * Return: whether @cond became true.
 */
#define wait_until(cond, timeout_ms, step_ms) ({				\
	double wait_end_ = mono_time() + (timeout_ms) / 1000.0;		\
	bool wait_done_;						\
									\
	while (!(wait_done_ = (cond)) && mono_time() < wait_end_)	\
		sleep_ms(step_ms);					\
	wait_done_;							\
})

/* A seed that differs between runs and processes; printed so a run can be replayed. */
static inline uint64_t new_seed(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
	       ((uint64_t)getpid() << 16);
}

/* ---- sysfs and procfs --------------------------------------------------- */

/**
 * read_strf() - read the file named by @fmt into @buf of @len bytes, without
 * its trailing white space (a sysfs value's newline)
 * Return: 0, or -1 with errno set.
 */
static inline int __printf(3, 4) read_strf(char *buf, size_t len, const char *fmt, ...)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd, err;

	if (FORMAT_ARGS(path, fmt))
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	err = errno;
	close(fd);
	if (n < 0) {
		errno = err;
		return -1;
	}
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		n--;
	buf[n] = '\0';
	return 0;
}

/**
 * read_u64f() - read the file named by @fmt: one decimal number, all of it
 * (a sysfs value)
 * Return: 0, or -1 with errno set (EINVAL if it is not such a number).
 */
static inline int __printf(2, 3) read_u64f(unsigned long long *v, const char *fmt, ...)
{
	char path[PATH_MAX], buf[64], *end;

	if (FORMAT_ARGS(path, fmt) || read_strf(buf, sizeof(buf), "%s", path))
		return -1;
	errno = 0;
	*v = strtoull(buf, &end, 10);
	if (!isdigit((unsigned char)buf[0]) || errno || *end) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

/* write_str() - write @s to the file @path in one write(): 0, or -1 with errno set */
static inline int write_str(const char *path, const char *s)
{
	ssize_t n;
	int fd, err;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = write(fd, s, strlen(s));
	err = n < 0 ? errno : (size_t)n == strlen(s) ? 0 : EIO;
	close(fd);
	errno = err;
	return err ? -1 : 0;
}

/* existsf() - whether the file named by @fmt exists */
static inline bool __printf(1, 2) existsf(const char *fmt, ...)
{
	char path[PATH_MAX];

	return !FORMAT_ARGS(path, fmt) && !access(path, F_OK);
}

/**
 * link_namef() - last component of the target of the symlink named by @fmt,
 * e.g. the BDF of a sysfs "device" link, into @out of @len bytes
 * Return: 0, or -1 with errno set.
 */
static inline int __printf(3, 4) link_namef(char *out, size_t len, const char *fmt, ...)
{
	char path[PATH_MAX], target[PATH_MAX], *base;
	ssize_t n;

	if (FORMAT_ARGS(path, fmt))
		return -1;
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return -1;
	target[n] = '\0';
	base = strrchr(target, '/');
	scopy(out, len, base ? base + 1 : target);
	return 0;
}

/* ---- the rig: providers, nodes, disks ----------------------------------- */

/*
 * The PCI address of one of the rig's devices, by role: "CMB", "IVSHMEM",
 * "DISK_A" or "DISK_B", from $P2PMEM_<ROLE>_BDF, which the VM's init finds
 * by identity and exports (tests/guest/lib.sh, find_devices); "" if unset.
 */
static inline const char *rig_bdf(const char *role)
{
	char name[64];

	snprintf(name, sizeof(name), "P2PMEM_%s_BDF", role);
	return env_or(name, "");
}

/* The rig's p2p memory providers: the TARGET label, the role for rig_bdf() */
static const struct {
	const char *label, *role;
} rig_targets[] = {
	{ "cmb", "CMB" },
	{ "ivshmem", "IVSHMEM" },
};

#define NR_RIG_TARGETS	((int)ARRAY_SIZE(rig_targets))

/**
 * target_lookup() - the p2p memory provider that a TARGET argument names:
 * one of rig_targets, by label, or any PCI address
 * @arg: the argument
 * @bdf: its PCI address, @blen bytes
 * @blen: the size of @bdf
 * @label: @arg for case names, ':', '.' and ',' as '-', @llen bytes
 * @llen: the size of @label
 *
 * @bdf and @label are set even if @arg names nothing.
 * Return: its index in rig_targets, NR_RIG_TARGETS for another PCI address,
 * or -1 if @arg is neither (or the rig's device has no address).
 */
static inline int target_lookup(const char *arg, char *bdf, size_t blen, char *label,
				size_t llen)
{
	int i = 0;

	scopy(label, llen, arg);
	for (char *p = label; *p; p++)
		if (*p == ':' || *p == '.' || *p == ',')
			*p = '-';
	while (i < NR_RIG_TARGETS && strcmp(arg, rig_targets[i].label))
		i++;
	scopy(bdf, blen, i < NR_RIG_TARGETS ? rig_bdf(rig_targets[i].role) : arg);
	if (!strchr(bdf, ':') || (i == NR_RIG_TARGETS && strlen(arg) >= blen))
		return -1;
	return i;
}

/**
 * node_bdf() - the PCI device providing the memory of node @name (p2pmemN):
 * its parent, or for a region published by another driver, the parent of the
 * region's auxiliary device (p2pdma.region.<id>)
 * Return: 0, or -1 if there is none.
 */
static inline int node_bdf(const char *name, char *out, size_t len)
{
	char path[PATH_MAX], target[PATH_MAX], *base;

	snprintf(path, sizeof(path), SYSFS_MISC "/%s/device", name);
	if (!realpath(path, target))
		return -1;
	base = strrchr(target, '/');
	if (base && !strncmp(base + 1, "p2pdma.region.", 14)) {
		*base = '\0';
		base = strrchr(target, '/');
	}
	scopy(out, len, base ? base + 1 : target);
	return 0;
}

/* A /dev/p2pmemN node, as its sysfs attributes describe it */
struct node {
	char name[32];			/* p2pmemN */
	char dev[48];			/* /dev/p2pmemN */
	char bdf[32];			/* PCI parent */
	char mode[16];			/* "pool" or "device" */
	unsigned long long size, bar, bar_offset;
	bool pool;
};

/* node_load() - node @name into @n: 0, or -1 if an attribute cannot be read */
static inline int node_load(const char *name, struct node *n)
{
	memset(n, 0, sizeof(*n));
	scopy(n->name, sizeof(n->name), name);
	snprintf(n->dev, sizeof(n->dev), "/dev/%s", n->name);
	if (node_bdf(name, n->bdf, sizeof(n->bdf)) ||
	    read_strf(n->mode, sizeof(n->mode), SYSFS_MISC "/%s/mode", name) ||
	    read_u64f(&n->size, SYSFS_MISC "/%s/size", name) ||
	    read_u64f(&n->bar, SYSFS_MISC "/%s/bar", name) ||
	    read_u64f(&n->bar_offset, SYSFS_MISC "/%s/bar_offset", name))
		return -1;
	n->pool = !strcmp(n->mode, "pool");
	return 0;
}

/**
 * node_scan() - collect the nodes whose PCI parent is @bdf (every node if
 * NULL) into @out, @max at most. A node whose attributes cannot be read is
 * left out with a warning, or with @strict fails the case.
 * Return: number of nodes (may exceed @max), or -1 (strict failure).
 */
static inline int node_scan(const char *bdf, struct node *out, int max, bool strict)
{
	DIR *d = opendir(SYSFS_MISC);
	struct dirent *e;
	int cnt = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		struct node n;

		if (strncmp(e->d_name, "p2pmem", 6))
			continue;
		if (node_load(e->d_name, &n)) {
			if (strict) {
				fail("%s: cannot read its sysfs attributes (device, mode, size, bar, bar_offset): %s",
				     e->d_name, strerror(errno));
				cnt = -1;
				break;
			}
			note("warning: %s: incomplete sysfs attributes", e->d_name);
			continue;
		}
		if (bdf && strcmp(n.bdf, bdf))
			continue;
		if (cnt < max)
			out[cnt] = n;
		cnt++;
	}
	closedir(d);
	return cnt;
}

/**
 * disk_of_bdf() - the block device of the NVMe controller at PCI @bdf (its
 * first namespace, by name) as "/dev/<name>" in @dev of @len bytes
 * Return: true if there is one.
 */
static inline bool disk_of_bdf(const char *bdf, char *dev, size_t len)
{
	DIR *d = opendir("/sys/block");
	struct dirent *e;
	char who[64], best[64] = "";

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.' ||
		    link_namef(who, sizeof(who), "/sys/block/%s/device/device", e->d_name) ||
		    strcmp(who, bdf))
			continue;
		if (!best[0] || strcmp(e->d_name, best) < 0)
			scopy(best, sizeof(best), e->d_name);
	}
	if (d)
		closedir(d);
	snprintf(dev, len, "/dev/%s", best);
	return best[0];
}

/* read_avail() - the free p2p memory of provider @bdf: 0, or -1 with errno set */
static inline int read_avail(const char *bdf, unsigned long long *v)
{
	return read_u64f(v, SYSFS_PCI "/devices/%s/p2pmem/available", bdf);
}

/**
 * avail_wait() - wait up to AVAIL_TIMEOUT_MS for the free p2p memory of
 * provider @bdf to be @want (freed memory comes back a little later); the
 * last value read in @cur
 * Return: 0, or -1 with errno set by the last read, 0 if that worked.
 */
static inline int avail_wait(const char *bdf, unsigned long long want, unsigned long long *cur)
{
	int err = 0;
	bool reached = wait_until(!(err = read_avail(bdf, cur) ? errno : 0) && *cur == want,
				  AVAIL_TIMEOUT_MS, WAIT_STEP_MS);

	errno = err;
	return reached ? 0 : -1;
}

/* ---- data patterns ------------------------------------------------------ */

/*
 * Pattern streams: xorshift64* seeded through splitmix64. Every 8-byte word
 * of a stream differs from its neighbours and from any other seed's stream,
 * so stale data, zeroes, or a shifted copy never pass for the real thing.
 * Lengths are multiples of 8 (all callers use page multiples).
 */
static inline uint64_t prng_init(uint64_t seed)
{
	uint64_t z = seed + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return z ? z : 1;
}

static inline uint64_t prng_next(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* Write the next @len bytes of the stream in @state to @buf. */
static inline void prng_fill(void *buf, size_t len, uint64_t *state)
{
	uint64_t *w = buf;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = prng_next(state);
}

/*
 * Compare @buf with the next @len bytes of the stream.
 * Return: offset of the first bad word, or -1.
 */
static inline long long prng_mismatch(const void *buf, size_t len, uint64_t *state)
{
	const uint64_t *w = buf;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != prng_next(state))
			return (long long)(i * 8);
	return -1;
}

static inline void pattern_fill(void *buf, size_t len, uint64_t seed)
{
	uint64_t state = prng_init(seed);

	prng_fill(buf, len, &state);
}

/* Return: offset of the first byte that differs, or -1. */
static inline long long first_diff(const void *a, const void *b, size_t len)
{
	const unsigned char *x = a, *y = b;
	size_t i = 0;

	if (!memcmp(a, b, len))
		return -1;
	while (x[i] == y[i])
		i++;
	return (long long)i;
}

/* Return: offset of the first non-zero 8-byte word, or -1. */
static inline long long first_nonzero(const void *buf, size_t len)
{
	const uint64_t *w = buf;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i])
			return (long long)(i * 8);
	return -1;
}

/* ---- block I/O ---------------------------------------------------------- */

/* pread()/pwrite() all of @len bytes; -1 with errno set on error or end of device. */
static inline int io_full(int fd, void *buf, size_t len, off_t off, bool write)
{
	char *p = buf;

	while (len) {
		ssize_t n = write ? pwrite(fd, p, len, off) : pread(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= n;
		off += n;
	}
	return 0;
}

static inline int pread_full(int fd, void *buf, size_t len, off_t off)
{
	return io_full(fd, buf, len, off, false);
}

static inline int pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
	return io_full(fd, (void *)buf, len, off, true);
}

/* Open a block device O_RDWR|O_DIRECT; -1 with errno ENOTBLK if @path is something else. */
static inline int open_blockdev(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) || !S_ISBLK(st.st_mode)) {
		close(fd);
		errno = ENOTBLK;
		return -1;
	}
	return fd;
}

static inline int blockdev_size(int fd, unsigned long long *size)
{
	return ioctl(fd, BLKGETSIZE64, size) ? -1 : 0;	/* it stores a u64 */
}

/* Page-aligned host memory for O_DIRECT; NULL on failure. */
static inline void *alloc_aligned(size_t len)
{
	void *p;

	if (posix_memalign(&p, (size_t)sysconf(_SC_PAGESIZE), len))
		return NULL;
	return p;
}

#endif /* P2PMEM_TESTS_LIB_H */
