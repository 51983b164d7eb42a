/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the p2pmem_pci guest test programs (p2pmem-check.c,
 * p2pmem-bench.c, p2pcopy.c). Each program is one translation unit, so everything here is
 * static inline.
 */
#ifndef P2PMEM_TESTS_COMMON_H
#define P2PMEM_TESTS_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
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
#define GIB	(1024ULL * MIB)

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

/**
 * link_name() - last component of the target of the symlink @path, e.g. the
 * BDF of a sysfs "device" link, into @out of @len bytes
 * Return: 0, or -1 with errno set by readlink().
 */
static inline int link_name(const char *path, char *out, size_t len)
{
	char target[PATH_MAX], *base;
	ssize_t n = readlink(path, target, sizeof(target) - 1);

	if (n < 0)
		return -1;
	target[n] = '\0';
	base = strrchr(target, '/');
	scopy(out, len, base ? base + 1 : target);
	return 0;
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

	snprintf(path, sizeof(path), "/sys/class/misc/%s/device", name);
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

/**
 * disk_of_bdf() - the block device of the NVMe controller at PCI @bdf (its
 * first namespace, by name) as "/dev/<name>" in @dev of @len bytes
 * Return: true if there is one.
 */
static inline bool disk_of_bdf(const char *bdf, char *dev, size_t len)
{
	DIR *d = opendir("/sys/block");
	struct dirent *e;
	char path[PATH_MAX], who[64], best[64] = "";

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/device/device", e->d_name);
		if (link_name(path, who, sizeof(who)) || strcmp(who, bdf))
			continue;
		if (!best[0] || strcmp(e->d_name, best) < 0)
			scopy(best, sizeof(best), e->d_name);
	}
	if (d)
		closedir(d);
	snprintf(dev, len, "/dev/%s", best);
	return best[0];
}

/**
 * parse_dec() - parse a decimal number that is all of @buf (a sysfs value)
 * Return: 0, or -1 with errno set (EINVAL, ERANGE).
 */
static inline int parse_dec(const char *buf, unsigned long long *v)
{
	char *end;

	errno = 0;
	*v = strtoull(buf, &end, 10);
	if (!isdigit((unsigned char)buf[0]) || errno || *end) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

/**
 * parse_size() - parse "4096", "0x1000", "4k", "1m" or "2g" (binary multiples)
 * Return: 0, or -1 if @s is not a size or does not fit 64 bits.
 */
static inline int parse_size(const char *s, unsigned long long *out)
{
	unsigned long long v, mult = 1;
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
	switch (*end) {
	case 'k': case 'K':
		mult = KIB;
		end++;
		break;
	case 'm': case 'M':
		mult = MIB;
		end++;
		break;
	case 'g': case 'G':
		mult = GIB;
		end++;
		break;
	}
	if (*end || v > ULLONG_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

/* "64 MiB", "4 KiB", "1000 B", "0": for messages only */
static inline const char *human_size(unsigned long long v, char *buf, size_t len)
{
	if (!v)
		snprintf(buf, len, "0");
	else if (v >= GIB && !(v % GIB))
		snprintf(buf, len, "%llu GiB", v / GIB);
	else if (v >= MIB && !(v % MIB))
		snprintf(buf, len, "%llu MiB", v / MIB);
	else if (v >= KIB && !(v % KIB))
		snprintf(buf, len, "%llu KiB", v / KIB);
	else
		snprintf(buf, len, "%llu B", v);
	return buf;
}

static inline double mono_time(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A seed that differs between runs and processes; printed so a run can be replayed. */
static inline uint64_t new_seed(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
	       ((uint64_t)getpid() << 16);
}

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

static inline long long pattern_mismatch(const void *buf, size_t len, uint64_t seed)
{
	uint64_t state = prng_init(seed);

	return prng_mismatch(buf, len, &state);
}

/* Return: offset of the first byte that differs, or -1. */
static inline long long first_diff(const void *a, const void *b, size_t len)
{
	const unsigned char *x = a, *y = b;

	if (!memcmp(a, b, len))
		return -1;
	for (size_t i = 0; i < len; i++)
		if (x[i] != y[i])
			return (long long)i;
	return -1;
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
	uint64_t v;

	if (ioctl(fd, BLKGETSIZE64, &v))
		return -1;
	*size = v;
	return 0;
}

/* Page-aligned host memory for O_DIRECT; NULL on failure. */
static inline void *alloc_aligned(size_t len)
{
	void *p;

	if (posix_memalign(&p, (size_t)sysconf(_SC_PAGESIZE), len))
		return NULL;
	return p;
}

#endif /* P2PMEM_TESTS_COMMON_H */
