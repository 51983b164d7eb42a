// SPDX-License-Identifier: GPL-2.0
/*
 * p2pmem-bench - /dev/p2pmemN against the sysfs p2pmem/allocate file and
 * host memory
 *
 *   p2pmem-bench [OPTIONS] TARGET...
 *
 * TARGET is "host" (anonymous memory, MAP_PRIVATE|MAP_ANONYMOUS), "cmb",
 * "ivshmem" or a PCI address. For a provider, every measurement is made on
 * its node (the /dev/p2pmemN whose sysfs parent is the device, mapped at
 * offset 0) and on the device's p2pmem/allocate file, the two side by side in
 * every repetition (node first in even repetitions, allocate first in odd
 * ones), so both see the same conditions:
 *
 *   map_touch   mmap() and a write to one byte of every page, in µs; the
 *               minor page faults it took (faults); mmap() alone (mmap) and
 *               munmap() alone (munmap)
 *   odirect     O_DIRECT reads of disk A into the buffer and writes of the
 *               buffer to disk B, SIZE bytes per I/O, THREADS threads each
 *               with its own SIZE bytes of the buffer and its own range of
 *               the disks, in MiB/s of data copied. Node and allocate are
 *               both mapped, and take turns within a repetition: the disks'
 *               ranges are cut into up to 8 slices, each copied through one
 *               buffer and then the other, the order alternating. In the
 *               first repetition the last I/O of every slice and thread is
 *               checked on disk B
 *   cpu_write   memset() of the whole (already faulted) mapping, MiB/s,
 *               repeated for at least 50 ms
 *   cpu_read    a sum of the words of the whole mapping, the same way
 *   fragmented_map  pool nodes only: the pool is filled with mappings of
 *               the node, every other one is unmapped, then a mapping of L
 *               bytes (at most the free memory, more than any hole) is
 *               tried through the node and through allocate: 1 mapped, 0
 *               refused; the note says in how many physically contiguous
 *               runs it came (/proc/self/pagemap)
 *
 * A device memory node (a device bound to p2pmem_pci, whose memory is its
 * node's alone, with no allocate file) is measured alone.
 *
 * A size that does not fit (more than the node's region or the pool's free
 * memory at the start) is not measured: its row says "skip" and why.
 *
 * Output: CSV with one header line on stdout, or in FILE with -o,
 *
 *   provider,mode,buffer,metric,size,threads,reps,unit,median,min,max,status,note
 *
 * (status ok, skip or fail; note without commas; buffer node, sysfs, anon,
 * or ratio: for map_touch, odirect, cpu_write and cpu_read of a provider,
 * the ratio node : sysfs of each repetition, its median, min and max), and
 * on stdout one line per target and one for the fragmented pool of a pool target:
 *
 *   P2PMEM-RESULT: PASS|FAIL|SKIP bench-TARGET [reason]
 *   P2PMEM-RESULT: PASS|FAIL|SKIP bench-fragment-TARGET [reason]
 *
 * With --sysfs-only (a kernel without p2pmem_pci, such as mainline) a
 * provider is measured through its allocate file alone; the fragmented pool
 * is then filled through allocate.
 *
 * Progress goes to stderr. Exit: 0 if nothing failed, 1 if something did,
 * 2 on bad usage.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "lib.h"

#define MAX_REPS	99
#define MAX_SIZES	16
#define MAX_THREADS	16
#define FRAG_MAX_LEN	(16 * MIB)
#define CPU_MIN_TIME	0.05	/* seconds of memset() or sum per measurement */

static const unsigned long long default_sizes[] = {
	4 * KIB, 64 * KIB, 1 * MIB, 4 * MIB, 16 * MIB, 32 * MIB, 64 * MIB,
};

static const unsigned long long odirect_chunks[] = { 4 * KIB, 64 * KIB, 1 * MIB };
static const int odirect_threads[] = { 1, 4 };

enum { B_NODE, B_SYSFS, B_ANON, B_RATIO };
static const char *const buf_names[] = { "node", "sysfs", "anon", "ratio" };

struct opts {
	int reps;
	unsigned long long sizes[MAX_SIZES];
	int nr_sizes;
	unsigned long long total;	/* bytes copied per odirect measurement */
	unsigned long long bw_len;	/* mapping length for cpu_write/cpu_read */
	unsigned long long frag_chunk;
	bool odirect;
	bool sysfs_only;		/* providers have no node: allocate alone */
	const char *src, *dst;		/* disk A and B, default: found by BDF */
	FILE *csv;
};

/* One buffer of a target: the node, the allocate file or host memory. */
struct buf {
	int kind;
	char path[PATH_MAX];
	int fd;
	unsigned long long limit;	/* longest mapping that fits */
	char limit_why[64];		/* what the limit is */
};

struct target {
	char label[32];
	char bdf[32];
	char mode[16];			/* pool, device or anon */
	unsigned long long avail0;	/* pool's free memory at the start */
	struct buf bufs[2];
	int nr_bufs;
};

struct disks {
	int afd, bfd;
	char a[80], b[80];
	char *orig;			/* what disk A holds in [0, total) */
};

static struct opts opt = {
	.reps = 5,
	.total = 16 * MIB,
	.bw_len = 4 * MIB,
	.frag_chunk = 64 * KIB,
	.odirect = true,
};

static size_t page;

/* Wait until @t's pool has @want bytes free again. */
static int wait_avail(struct target *t, unsigned long long want, const char *after)
{
	unsigned long long cur = 0;

	if (!avail_wait(t->bdf, want, &cur))
		return 0;
	if (errno)
		return fail("%s: cannot read p2pmem/available of %s: %s", after, t->bdf,
			    strerror(errno));
	return fail("%s: p2pmem/available of %s is %llu, expected %llu", after, t->bdf, cur, want);
}

/* ---- statistics and output ---------------------------------------------- */

struct stat3 {
	double median, min, max;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static struct stat3 stats(double *v, int n)
{
	struct stat3 s;

	qsort(v, n, sizeof(*v), cmp_double);
	s.min = v[0];
	s.max = v[n - 1];
	s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return s;
}

static void __printf(10, 11)
csv_row(const struct target *t, int kind, const char *metric, unsigned long long size,
	int threads, int reps, const char *unit, const struct stat3 *s, const char *status,
	const char *fmt, ...)
{
	char note[256] = "";

	if (fmt) {
		FORMAT_ARGS(note, fmt);
		for (char *p = note; *p; p++)
			if (*p == ',' || *p == '\n' || *p == '"')
				*p = ';';
	}
	fprintf(opt.csv, "%s,%s,%s,%s,%llu,%d,%d,%s,", t->label, t->mode, buf_names[kind],
		metric, size, threads, reps, unit);
	if (s && kind == B_RATIO)
		fprintf(opt.csv, "%.3f,%.3f,%.3f", s->median, s->min, s->max);
	else if (s)
		fprintf(opt.csv, "%.1f,%.1f,%.1f", s->median, s->min, s->max);
	else
		fprintf(opt.csv, ",,");
	fprintf(opt.csv, ",%s,%s\n", status, note);
	fflush(opt.csv);
}

/* ---- mappings ----------------------------------------------------------- */

/* Host memory is anonymous (its fd is -1); the others map their file. */
static void *buf_map(const struct buf *b, size_t len)
{
	return mmap(NULL, len, PROT_READ | PROT_WRITE,
		    b->kind == B_ANON ? MAP_PRIVATE | MAP_ANONYMOUS : MAP_SHARED, b->fd, 0);
}

/* Write one byte of every page. */
static void touch_pages(char *p, size_t len)
{
	for (size_t off = 0; off < len; off += page)
		((volatile char *)p)[off] = 1;
}

static long minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

/* After a p2p mapping is gone, its memory must be back in the pool. */
static int settle(struct target *t, const struct buf *b, const char *what)
{
	/* device memory: the node alone, no pool */
	if (b->kind == B_ANON || !strcmp(t->mode, "device"))
		return 0;
	return wait_avail(t, t->avail0, what);
}

static bool fits(const struct buf *b, unsigned long long len)
{
	return b->kind == B_ANON || len <= b->limit;
}

/* Map @len bytes of @b, fault them in: for measurements that are not of that. */
static int map_ready(const struct buf *b, size_t len, char **p)
{
	*p = buf_map(b, len);
	if (*p == MAP_FAILED)
		return fail("mmap %s length %s: %s", b->path, sz(len), strerror(errno));
	touch_pages(*p, len);
	return 0;
}

/*
 * A row of its own for the ratio node : sysfs of each repetition, the two
 * measured side by side: steadier than the ratio of the medians when the
 * emulation's speed drifts during the run. Call it before stats() sorts
 * @a and @b.
 */
static void csv_ratio(const struct target *t, const char *metric, unsigned long long size,
		      int threads, const double *a, const double *b)
{
	double r[MAX_REPS];
	struct stat3 s;

	for (int i = 0; i < opt.reps; i++) {
		if (!(b[i] > 0))
			return;
		r[i] = a[i] / b[i];
	}
	s = stats(r, opt.reps);
	csv_row(t, B_RATIO, metric, size, threads, opt.reps, "ratio", &s, "ok",
		"node : sysfs of each repetition");
}

/*
 * The row of buffer @b's measurement @metric, its values @v: "skip" if @need
 * bytes do not fit @b, "fail" if it @failed, else "ok" with @note (or none),
 * its statistics in @s. Return: whether it is "ok".
 */
static bool csv_measured(const struct target *t, const struct buf *b, bool failed,
			 const char *metric, unsigned long long size, int threads,
			 const char *unit, unsigned long long need, double *v,
			 struct stat3 *s, const char *note)
{
	if (!fits(b, need)) {
		csv_row(t, b->kind, metric, size, threads, 0, unit, NULL, "skip", "%s > %s",
			sz(need), b->limit_why);
		return false;
	}
	if (failed) {
		csv_row(t, b->kind, metric, size, threads, 0, unit, NULL, "fail", "%s", reason);
		return false;
	}
	*s = stats(v, opt.reps);
	csv_row(t, b->kind, metric, size, threads, opt.reps, unit, s, "ok", note ? "%s" : NULL,
		note);
	return true;
}

/* Whether a target's node and allocate file were both measured */
static bool both_ok(const struct target *t, const bool *failed, unsigned long long len)
{
	return t->nr_bufs == 2 && t->bufs[0].kind == B_NODE && !failed[0] && !failed[1] &&
	       fits(&t->bufs[0], len) && fits(&t->bufs[1], len);
}

/* The buffer measured @k-th in repetition @r: the order alternates. */
static int buf_order(const struct target *t, int r, int k)
{
	return r % 2 ? t->nr_bufs - 1 - k : k;
}

/* ---- map_touch ---------------------------------------------------------- */

static void bench_map_touch(struct target *t)
{
	double m[2][4][MAX_REPS];	/* buffer, (map_touch, mmap, munmap, faults), rep */
	static const char *const names[] = { "map_touch", "mmap", "munmap", "faults" };
	static const char *const units[] = { "us", "us", "us", "faults" };

	for (int si = 0; si < opt.nr_sizes; si++) {
		unsigned long long len = opt.sizes[si];
		bool failed[2] = { false, false };

		for (int r = 0; r < opt.reps; r++) {
			for (int k = 0; k < t->nr_bufs; k++) {
				int bi = buf_order(t, r, k);
				const struct buf *b = &t->bufs[bi];
				double t0, t1, t2, t3;
				long f0, f1;
				char *p;

				if (!fits(b, len) || failed[bi])
					continue;
				f0 = minflt();
				t0 = mono_time();
				p = buf_map(b, len);
				t1 = mono_time();
				if (p == MAP_FAILED) {
					fail("mmap %s length %s: %s", b->path, sz(len),
					     strerror(errno));
					failed[bi] = true;
					continue;
				}
				touch_pages(p, len);
				t2 = mono_time();
				f1 = minflt();
				munmap(p, len);
				t3 = mono_time();
				m[bi][0][r] = (t2 - t0) * 1e6;
				m[bi][1][r] = (t1 - t0) * 1e6;
				m[bi][2][r] = (t3 - t2) * 1e6;
				m[bi][3][r] = (double)(f1 - f0);
				if (settle(t, b, "after munmap"))
					failed[bi] = true;
			}
		}
		if (both_ok(t, failed, len))
			csv_ratio(t, "map_touch", len, 1, m[0][0], m[1][0]);
		for (int bi = 0; bi < t->nr_bufs; bi++) {
			const struct buf *b = &t->bufs[bi];

			for (int k = 0; k < 4; k++) {
				struct stat3 s;

				if (!csv_measured(t, b, failed[bi], names[k], len, 1, units[k], len,
						  m[bi][k], &s, NULL))
					continue;
				if (k == 0)
					fprintf(stderr, "  %s %s map_touch %s: %.0f us (%.0f-%.0f)",
						t->label, buf_names[b->kind], sz(len), s.median,
						s.min, s.max);
				if (k == 3)
					fprintf(stderr, ", %.0f faults\n", s.median);
			}
		}
	}
}

/* ---- odirect ------------------------------------------------------------ */

/*
 * A repetition copies opt.total bytes through every buffer of a target. The
 * disks' ranges are cut into up to ODIRECT_SLICES slices, and the buffers
 * take turns slice by slice (A B, B A, A B, ...), so a change of the
 * emulation's speed during the repetition reaches all of them alike. The
 * buffer that goes first, right after the mapping, alternates between
 * repetitions too.
 */
#define ODIRECT_SLICES	8

/* Threads that copy one slice through one buffer per step, then wait. */
struct crew {
	pthread_barrier_t start, end;
	const struct disks *dk;
	int threads;
	unsigned long long per;		/* bytes of each thread's range of the disks */
	/* the step: set by the main thread while the workers wait */
	char *buf;
	size_t chunk;
	unsigned long long off, len;	/* of the slice, in each thread's range */
	bool quit;
	struct worker {
		pthread_t tid;
		struct crew *crew;
		int idx;
		int err;
		const char *op;
	} w[MAX_THREADS];
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct crew *c = w->crew;

	for (;;) {
		char *buf;
		off_t off;

		pthread_barrier_wait(&c->start);
		if (c->quit)
			return NULL;
		buf = c->buf + w->idx * c->chunk;
		off = (off_t)(w->idx * c->per + c->off);
		for (unsigned long long done = 0; !w->err && done < c->len; done += c->chunk) {
			if (pread_full(c->dk->afd, buf, c->chunk, off + done)) {
				w->err = errno;
				w->op = "read";
			} else if (pwrite_full(c->dk->bfd, buf, c->chunk, off + done)) {
				w->err = errno;
				w->op = "write";
			}
		}
		pthread_barrier_wait(&c->end);
	}
}

static void crew_start(struct crew *c, const struct disks *dk, int threads)
{
	*c = (struct crew){ .dk = dk, .threads = threads, .per = opt.total / threads };
	pthread_barrier_init(&c->start, NULL, threads + 1);
	pthread_barrier_init(&c->end, NULL, threads + 1);
	for (int i = 0; i < threads; i++) {
		c->w[i] = (struct worker){ .crew = c, .idx = i };
		if (pthread_create(&c->w[i].tid, NULL, worker_run, &c->w[i])) {
			/* never happens with so few threads; give up on the run */
			fprintf(stderr, "p2pmem-bench: pthread_create failed\n");
			exit(1);
		}
	}
}

static void crew_stop(struct crew *c)
{
	c->quit = true;
	pthread_barrier_wait(&c->start);
	for (int i = 0; i < c->threads; i++)
		pthread_join(c->w[i].tid, NULL);
	pthread_barrier_destroy(&c->start);
	pthread_barrier_destroy(&c->end);
}

/* Copy one slice through @p; its time in seconds in @secs. */
static int crew_step(struct target *t, struct crew *c, char *p, size_t chunk,
		     unsigned long long off, unsigned long long len, double *secs)
{
	double t0;
	int ret = 0;

	c->buf = p;
	c->chunk = chunk;
	c->off = off;
	c->len = len;
	t0 = mono_time();
	pthread_barrier_wait(&c->start);
	pthread_barrier_wait(&c->end);
	*secs = mono_time() - t0;
	for (int i = 0; i < c->threads; i++) {
		struct worker *w = &c->w[i];

		if (w->err && !ret)
			ret = fail("O_DIRECT %s %s through %s, thread %d: %s (%s)", w->op,
				   !strcmp(w->op, "read") ? c->dk->a : c->dk->b, t->label, i,
				   strerror(w->err), ename(w->err));
		w->err = 0;
	}
	return ret;
}

/*
 * The last I/O of a slice in every thread's range: overwrite it on disk B
 * before the slice is copied, compare it with disk A after.
 */
static int check_pieces(struct target *t, const struct crew *c, size_t chunk,
			unsigned long long end, bool before)
{
	const struct disks *dk = c->dk;
	char *tmp = alloc_aligned(chunk);
	int ret = 0;

	if (!tmp)
		return fail("out of memory");
	for (int i = 0; i < c->threads && !ret; i++) {
		off_t off = (off_t)(i * c->per + end - chunk);
		long long bad;

		if (before) {
			memset(tmp, 0xa5, chunk);
			if (pwrite_full(dk->bfd, tmp, chunk, off))
				ret = fail("write %s: %s", dk->b, strerror(errno));
			continue;
		}
		if (pread_full(dk->bfd, tmp, chunk, off)) {
			ret = fail("read back %s: %s", dk->b, strerror(errno));
			continue;
		}
		bad = first_diff(tmp, dk->orig + off, chunk);
		if (bad >= 0)
			ret = fail("%s at %lld differs from %s after a copy through %s",
				   dk->b, (long long)off + bad, dk->a, t->label);
	}
	free(tmp);
	return ret;
}

/*
 * Copy opt.total bytes through each buffer of @t that is mapped in @p, in
 * turns; MiB/s of each in @rate[buffer][@r]. A buffer whose copy fails is
 * marked in @failed and left out of the remaining turns. The first
 * repetition checks the data every step.
 */
static void copy_turns(struct target *t, struct crew *c, char **p, bool *failed,
		       size_t chunk, int r, double rate[][MAX_REPS])
{
	unsigned long long n = c->per / chunk, slices = ODIRECT_SLICES, len;
	double secs[2] = { 0, 0 };

	while (n % slices)
		slices /= 2;
	len = c->per / slices;
	for (unsigned long long s = 0; s < slices; s++) {
		for (int k = 0; k < t->nr_bufs; k++) {
			int bi = buf_order(t, (int)s + r, k);
			double d;

			if (!p[bi] || failed[bi])
				continue;
			if ((!r && check_pieces(t, c, chunk, (s + 1) * len, true)) ||
			    crew_step(t, c, p[bi], chunk, s * len, len, &d) ||
			    (!r && check_pieces(t, c, chunk, (s + 1) * len, false))) {
				failed[bi] = true;
				continue;
			}
			secs[bi] += d;
		}
	}
	for (int bi = 0; bi < t->nr_bufs; bi++)
		if (secs[bi] > 0)
			rate[bi][r] = opt.total / (double)MIB / secs[bi];
}

/* In pool mode, node and allocate both take @len from the pool at once. */
static unsigned long long odirect_need(const struct target *t, const struct buf *b,
				       unsigned long long len)
{
	return b->kind != B_ANON && !strcmp(t->mode, "pool") ? len * t->nr_bufs : len;
}

static void bench_odirect(struct target *t, const struct disks *dk)
{
	for (size_t ci = 0; ci < ARRAY_SIZE(odirect_chunks); ci++) {
		for (size_t ti = 0; ti < ARRAY_SIZE(odirect_threads); ti++) {
			size_t chunk = odirect_chunks[ci];
			int threads = odirect_threads[ti];
			size_t len = chunk * threads;
			double rate[2][MAX_REPS];
			bool failed[2] = { false, false };
			struct crew c;

			crew_start(&c, dk, threads);
			for (int r = 0; r < opt.reps; r++) {
				char *p[2] = { NULL, NULL };

				for (int bi = 0; bi < t->nr_bufs; bi++) {
					const struct buf *b = &t->bufs[bi];

					if (failed[bi] || !fits(b, odirect_need(t, b, len)))
						continue;
					if (map_ready(b, len, &p[bi])) {
						failed[bi] = true;
						p[bi] = NULL;
					}
				}
				copy_turns(t, &c, p, failed, chunk, r, rate);
				for (int bi = 0; bi < t->nr_bufs; bi++)
					if (p[bi])
						munmap(p[bi], len);
				for (int bi = 0; bi < t->nr_bufs; bi++)
					if (p[bi] && settle(t, &t->bufs[bi],
							    "after munmap of the O_DIRECT buffers"))
						failed[bi] = true;
			}
			crew_stop(&c);
			if (both_ok(t, failed, odirect_need(t, &t->bufs[0], len)))
				csv_ratio(t, "odirect", chunk, threads, rate[0], rate[1]);
			for (int bi = 0; bi < t->nr_bufs; bi++) {
				const struct buf *b = &t->bufs[bi];
				char note[64];
				struct stat3 s;

				snprintf(note, sizeof(note), "%s per measurement", sz(opt.total));
				if (!csv_measured(t, b, failed[bi], "odirect", chunk, threads, "MiB/s",
						  odirect_need(t, b, len), rate[bi], &s, note))
					continue;
				fprintf(stderr, "  %s %s odirect %s x %d: %.1f MiB/s (%.1f-%.1f)\n",
					t->label, buf_names[b->kind], sz(chunk), threads, s.median,
					s.min, s.max);
			}
		}
	}
}

/* ---- cpu bandwidth ------------------------------------------------------ */

static volatile uint64_t sink;

/*
 * Passes of memset() (@write) or of a sum over @p until at least
 * CPU_MIN_TIME has gone by. Return: MiB/s.
 */
static double cpu_passes(char *p, size_t len, bool write, long *faults)
{
	const uint64_t *w = (const uint64_t *)p;
	double t0, t;
	long f0 = minflt();
	int passes = 0;

	t0 = mono_time();
	do {
		if (write) {
			memset(p, passes + 1, len);
		} else {
			uint64_t sum = 0;

			for (size_t i = 0; i < len / 8; i++)
				sum += w[i];
			sink = sum;
		}
		passes++;
		t = mono_time() - t0;
	} while (t < CPU_MIN_TIME);
	*faults += minflt() - f0;
	return (double)len * passes / MIB / t;
}

static void bench_cpu(struct target *t)
{
	size_t len = opt.bw_len;
	double bw[2][2][MAX_REPS];	/* buffer, (write, read), rep */
	static const char *const names[] = { "cpu_write", "cpu_read" };
	bool failed[2] = { false, false };
	long faults[2] = { 0, 0 };

	for (int r = 0; r < opt.reps; r++) {
		for (int k = 0; k < t->nr_bufs; k++) {
			int bi = buf_order(t, r, k);
			const struct buf *b = &t->bufs[bi];
			char *p;

			if (failed[bi] || !fits(b, len))
				continue;
			if (map_ready(b, len, &p)) {
				failed[bi] = true;
				continue;
			}
			bw[bi][0][r] = cpu_passes(p, len, true, &faults[bi]);
			bw[bi][1][r] = cpu_passes(p, len, false, &faults[bi]);
			munmap(p, len);
			if (settle(t, b, "after munmap"))
				failed[bi] = true;
		}
	}
	if (both_ok(t, failed, len))
		for (int k = 0; k < 2; k++)
			csv_ratio(t, names[k], len, 1, bw[0][k], bw[1][k]);
	for (int bi = 0; bi < t->nr_bufs; bi++)
		if (faults[bi])
			fprintf(stderr, "  %s %s: %ld page faults while the mapping was in use\n",
				t->label, buf_names[t->bufs[bi].kind], faults[bi]);
	for (int bi = 0; bi < t->nr_bufs; bi++) {
		const struct buf *b = &t->bufs[bi];

		for (int k = 0; k < 2; k++) {
			struct stat3 s;

			if (!csv_measured(t, b, failed[bi], names[k], len, 1, "MiB/s", len,
					  bw[bi][k], &s, NULL))
				continue;
			fprintf(stderr, "  %s %s %s %s: %.1f MiB/s (%.1f-%.1f)\n", t->label,
				buf_names[b->kind], names[k], sz(len), s.median, s.min, s.max);
		}
	}
}

/* ---- fragmented pool ---------------------------------------------------- */

/*
 * Physically contiguous runs of the (faulted in) mapping @p, from
 * /proc/self/pagemap; the longest in @longest. Return: number of runs, 0 if
 * the page frames cannot be read.
 */
static size_t phys_runs(const char *p, size_t len, size_t *longest)
{
	size_t runs = 0, run = 0, n = len / page;
	uint64_t prev = 0, *pm = calloc(n, sizeof(*pm));
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	*longest = 0;
	if (!pm || fd < 0 ||
	    pread_full(fd, pm, n * sizeof(*pm), (off_t)((uintptr_t)p / page * sizeof(*pm))))
		goto out;
	for (size_t i = 0; i < n; i++) {
		uint64_t pfn = pm[i] & ((1ULL << 55) - 1);

		if (!(pm[i] >> 63) || !pfn) {	/* not present, or no PFN shown */
			runs = 0;
			goto out;
		}
		if (!i || pfn != prev + 1) {
			runs++;
			run = 0;
		}
		if (++run > *longest)
			*longest = run;
		prev = pfn;
	}
	*longest *= page;
out:
	if (fd >= 0)
		close(fd);
	free(pm);
	return runs;
}

/* Try one mapping of @len through @b; 1 if it mapped (cleared). */
static int frag_try(struct target *t, const struct buf *b, size_t len,
		    unsigned long long nfree, char *why, size_t wlen)
{
	char *p = buf_map(b, len);
	size_t runs, longest;
	long long bad;

	if (p == MAP_FAILED) {
		snprintf(why, wlen, "refused (%s)", ename(errno));
		fprintf(stderr, "  %s %s fragmented_map %s: mmap refused (%s)\n", t->label,
			buf_names[b->kind], sz(len), strerror(errno));
		return 0;
	}
	bad = first_nonzero(p, len);
	runs = phys_runs(p, len, &longest);
	munmap(p, len);
	if (bad >= 0) {
		snprintf(why, wlen, "mapped but byte %lld not cleared", bad);
		fail("fragmented pool: %s mapping of %s: byte %lld not cleared", b->path,
		     sz(len), bad);
		return 0;
	}
	if (runs)
		snprintf(why, wlen, "mapped in %zu physically contiguous runs (longest %s)",
			 runs, sz(longest));
	else
		snprintf(why, wlen, "mapped");
	fprintf(stderr, "  %s %s fragmented_map %s: %s\n", t->label, buf_names[b->kind],
		sz(len), why);
	if (wait_avail(t, nfree, "after the mapping of the fragmented pool"))
		return 0;
	return 1;
}

/*
 * Fill the pool with mappings of opt.frag_chunk bytes (through the node, or
 * allocate if there is none), unmap every other one: free memory in holes of
 * one chunk. Then map L > any hole, L <= free. Return: 0, -1 on failure
 * (the case's reason set).
 */
static int bench_fragment(struct target *t)
{
	const struct buf *node = &t->bufs[0];
	size_t chunk = opt.frag_chunk, max = t->avail0 / chunk + 2, n = 0, len;
	unsigned long long nfree, want;
	char why[2][96];
	int ok[2], ret = 0;
	char **maps;

	maps = calloc(max, sizeof(*maps));
	if (!maps)
		return fail("out of memory");
	while (n < max) {
		maps[n] = buf_map(node, chunk);
		if (maps[n] == MAP_FAILED)
			break;
		n++;
	}
	if (n == max || errno != ENOMEM) {
		ret = fail("filling the pool with %s mappings: %s after %zu", sz(chunk),
			   n == max ? "no ENOMEM" : strerror(errno), n);
		goto out;
	}
	if (read_avail(t->bdf, &nfree)) {
		ret = fail("cannot read p2pmem/available: %s", strerror(errno));
		goto out;
	}
	want = nfree;
	for (size_t i = 1; i < n; i += 2) {
		munmap(maps[i], chunk);
		maps[i] = NULL;
		want += chunk;
	}
	if (wait_avail(t, want, "unmapping every other chunk")) {
		ret = -1;
		goto out;
	}
	nfree = want;
	len = nfree & ~(MIB - 1);
	if (len > FRAG_MAX_LEN)
		len = FRAG_MAX_LEN;
	fprintf(stderr, "  %s fragmented: %s free in holes of %s; mapping %s\n",
		t->label, sz(nfree), sz(chunk), sz(len));
	if (len < 4 * chunk) {
		ret = fail("fragmented pool: only %s free", sz(nfree));
		goto out;
	}
	for (int bi = 0; bi < t->nr_bufs; bi++)
		ok[bi] = frag_try(t, &t->bufs[bi], len, nfree, why[bi], sizeof(why[bi]));
	for (int bi = 0; bi < t->nr_bufs; bi++) {
		struct stat3 s = { ok[bi], ok[bi], ok[bi] };

		csv_row(t, t->bufs[bi].kind, "fragmented_map", len, 1, 1, "mapped", &s, "ok",
			"%s free in %zu holes of %s: %s", sz(nfree), n / 2, sz(chunk), why[bi]);
	}
	/* Only the node must map it: that allocate cannot is a finding. */
	if (node->kind == B_NODE && !ok[0])
		ret = fail("fragmented pool: %s free, mapping %s through %s: %s", sz(nfree),
			   sz(len), node->path, why[0]);
	else if (node->kind == B_NODE)
		fprintf(stderr, "  %s fragmented: node %s, sysfs %s\n", t->label, why[0], why[1]);
out:
	for (size_t i = 0; i < n; i++)
		if (maps[i])
			munmap(maps[i], chunk);
	free(maps);
	if (wait_avail(t, t->avail0, "after the fragmented pool"))
		ret = -1;
	return ret;
}

/* ---- targets ------------------------------------------------------------ */

/* Set up @t for @arg: its node and allocate file, or host memory. */
static int target_init(struct target *t, const char *arg)
{
	unsigned long long size = 0;
	struct buf *sysfs = NULL;
	struct node n;
	bool pool, known;

	memset(t, 0, sizeof(*t));
	known = target_lookup(arg, t->bdf, sizeof(t->bdf), t->label, sizeof(t->label)) >= 0;
	set_case("bench-%s", t->label);
	if (!strcmp(arg, "host")) {
		snprintf(t->mode, sizeof(t->mode), "anon");
		t->bufs[0] = (struct buf){ .kind = B_ANON, .fd = -1 };
		snprintf(t->bufs[0].path, sizeof(t->bufs[0].path), "anonymous memory");
		t->nr_bufs = 1;
		return 0;
	}
	if (!known)
		return fail("unknown target '%s': host, cmb, ivshmem or a PCI address", arg);

	/* The node, unless there is none to measure, then the allocate file */
	if (!opt.sysfs_only) {
		if (node_scan(t->bdf, &n, 1, false) != 1)
			return fail("no single /dev/p2pmem* node with PCI parent %s", t->bdf);
		t->bufs[t->nr_bufs++] = (struct buf){ .kind = B_NODE, .fd = -1 };
		snprintf(t->bufs[0].path, sizeof(t->bufs[0].path), "%s", n.dev);
		scopy(t->mode, sizeof(t->mode), n.mode);
		size = n.size;
	} else {
		scopy(t->mode, sizeof(t->mode), "pool");
	}
	/* Device memory is its node's alone: nothing to compare it with. */
	if (strcmp(t->mode, "device")) {
		sysfs = &t->bufs[t->nr_bufs++];
		*sysfs = (struct buf){ .kind = B_SYSFS, .fd = -1 };
		snprintf(sysfs->path, sizeof(sysfs->path), SYSFS_PCI "/devices/%s/p2pmem/allocate",
			 t->bdf);
		if (read_avail(t->bdf, &t->avail0))
			return fail("cannot read p2pmem/available of %s: %s", t->bdf,
				    strerror(errno));
	}

	/* A device node maps its region by offset; pool mappings take free memory. */
	pool = !strcmp(t->mode, "pool");
	for (int bi = 0; bi < t->nr_bufs; bi++) {
		struct buf *b = &t->bufs[bi];
		bool region = b->kind == B_NODE && !pool;

		b->limit = region ? size : t->avail0;
		snprintf(b->limit_why, sizeof(b->limit_why),
			 region ? "the %s region" : "%s free in the pool", sz(b->limit));
		b->fd = open(b->path, O_RDWR | O_CLOEXEC);
		if (b->fd < 0)
			return fail("open %s: %s", b->path, strerror(errno));
	}
	if (opt.sysfs_only)
		fprintf(stderr, "  %s: %s alone, %s free\n", t->label, sysfs->path,
			sz(t->avail0));
	else if (!sysfs)
		fprintf(stderr, "  %s: %s (%s, %s) alone\n", t->label,
			t->bufs[0].path, t->mode, sz(size));
	else
		fprintf(stderr, "  %s: %s (%s, %s), %s, %s free\n", t->label, t->bufs[0].path,
			t->mode, sz(size), sysfs->path, sz(t->avail0));
	return 0;
}

static void target_exit(struct target *t)
{
	for (int bi = 0; bi < t->nr_bufs; bi++)
		if (t->bufs[bi].fd >= 0)
			close(t->bufs[bi].fd);
}

/* Return: true if every measurement of the target worked. */
static bool run_target(const char *arg, const struct disks *dk)
{
	struct target t;
	bool ok;

	fprintf(stderr, "--- bench %s\n", arg);
	if (target_init(&t, arg)) {
		print_result(R_FAIL);
		target_exit(&t);
		return false;
	}
	bench_map_touch(&t);
	if (dk)
		bench_odirect(&t, dk);
	bench_cpu(&t);
	ok = !reason[0];
	print_result(ok ? R_PASS : R_FAIL);

	set_case("bench-fragment-%s", t.label);
	if (!strcmp(t.mode, "pool")) {
		if (bench_fragment(&t))
			ok = false;
		print_result(reason[0] ? R_FAIL : R_PASS);
	} else if (strcmp(t.mode, "anon")) {
		print_result(skip("a device node maps its region by offset: it needs no free run"));
	}
	target_exit(&t);
	return ok;
}

/* ---- disks -------------------------------------------------------------- */

static int disks_init(struct disks *dk)
{
	unsigned long long asize, bsize;
	uint64_t seed = new_seed();

	if (!opt.src && !disk_of_bdf(rig_bdf("DISK_A"), dk->a, sizeof(dk->a)))
		return fail("no NVMe disk A (PCI '%s', P2PMEM_DISK_A_BDF)", rig_bdf("DISK_A"));
	if (!opt.dst && !disk_of_bdf(rig_bdf("DISK_B"), dk->b, sizeof(dk->b)))
		return fail("no NVMe disk B (PCI '%s', P2PMEM_DISK_B_BDF)", rig_bdf("DISK_B"));
	if (opt.src)
		scopy(dk->a, sizeof(dk->a), opt.src);
	if (opt.dst)
		scopy(dk->b, sizeof(dk->b), opt.dst);
	dk->afd = open_blockdev(dk->a);
	dk->bfd = open_blockdev(dk->b);
	if (dk->afd < 0 || dk->bfd < 0)
		return fail("open %s / %s O_DIRECT: %s", dk->a, dk->b, strerror(errno));
	if (blockdev_size(dk->afd, &asize) || blockdev_size(dk->bfd, &bsize) ||
	    asize < opt.total || bsize < opt.total)
		return fail("%s or %s smaller than %s", dk->a, dk->b, sz(opt.total));
	dk->orig = alloc_aligned(opt.total);
	if (!dk->orig)
		return fail("out of memory");
	pattern_fill(dk->orig, opt.total, seed);
	if (pwrite_full(dk->afd, dk->orig, opt.total, 0))
		return fail("write %s: %s", dk->a, strerror(errno));
	fprintf(stderr, "  disks: %s -> buffer -> %s, %s per measurement, seed %llu\n", dk->a,
		dk->b, sz(opt.total), (unsigned long long)seed);
	return 0;
}

/* ---- main --------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: p2pmem-bench [OPTIONS] TARGET...\n"
		"Measure mmap + first touch, O_DIRECT NVMe -> buffer -> NVMe and CPU\n"
		"bandwidth on /dev/p2pmemN and the sysfs p2pmem/allocate file of each\n"
		"TARGET (cmb, ivshmem or a PCI address), or on anonymous memory (host).\n"
		"  -r, --reps N          repetitions of every measurement (default 5)\n"
		"  -s, --sizes LIST      mmap + touch lengths, comma-separated\n"
		"                        (default 4k,64k,1m,4m,16m,32m,64m)\n"
		"  -T, --total SIZE      bytes copied per O_DIRECT measurement (default 16m)\n"
		"  -b, --bw SIZE         mapping length for cpu_write/cpu_read (default 4m)\n"
		"  -f, --frag-chunk SIZE mapping length that fragments a pool (default 64k)\n"
		"      --src DEV         disk A (default: the NVMe of P2PMEM_DISK_A_BDF)\n"
		"      --dst DEV         disk B (default: the NVMe of P2PMEM_DISK_B_BDF)\n"
		"      --no-odirect      leave out the O_DIRECT measurements\n"
		"      --sysfs-only      providers have no node (a kernel without\n"
		"                        p2pmem_pci): measure their allocate file alone\n"
		"  -o, --output FILE     CSV to FILE instead of stdout\n"
		"Sizes accept k, m, g suffixes. Result lines (P2PMEM-RESULT:) go to stdout.\n");
}

static int parse_sizes(char *s)
{
	opt.nr_sizes = 0;
	for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
		unsigned long long v;

		if (opt.nr_sizes == MAX_SIZES || parse_size(tok, &v) || !v || v % page)
			return -1;
		opt.sizes[opt.nr_sizes++] = v;
	}
	return opt.nr_sizes ? 0 : -1;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "reps", required_argument, NULL, 'r' },
		{ "sizes", required_argument, NULL, 's' },
		{ "total", required_argument, NULL, 'T' },
		{ "bw", required_argument, NULL, 'b' },
		{ "frag-chunk", required_argument, NULL, 'f' },
		{ "src", required_argument, NULL, 'S' },
		{ "dst", required_argument, NULL, 'D' },
		{ "no-odirect", no_argument, NULL, 'N' },
		{ "sysfs-only", no_argument, NULL, 'A' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	const char *out = NULL;
	struct disks dk = { .afd = -1, .bfd = -1 };
	bool have_disks = false, ok = true;
	int c;

	page = (size_t)sysconf(_SC_PAGESIZE);
	opt.nr_sizes = ARRAY_SIZE(default_sizes);
	memcpy(opt.sizes, default_sizes, sizeof(default_sizes));
	while ((c = getopt_long(argc, argv, "r:s:T:b:f:o:h", longopts, NULL)) != -1) {
		unsigned long long v;

		switch (c) {
		case 'r':
			opt.reps = atoi(optarg);
			if (opt.reps < 1 || opt.reps > MAX_REPS)
				goto bad;
			break;
		case 's':
			if (parse_sizes(optarg))
				goto bad;
			break;
		case 'T':
		case 'b':
		case 'f':
			if (parse_size(optarg, &v) || !v || v % page)
				goto bad;
			*(c == 'T' ? &opt.total : c == 'b' ? &opt.bw_len : &opt.frag_chunk) = v;
			break;
		case 'S':
			opt.src = optarg;
			break;
		case 'D':
			opt.dst = optarg;
			break;
		case 'N':
			opt.odirect = false;
			break;
		case 'A':
			opt.sysfs_only = true;
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (optind == argc)
		goto bad;
	/* Every thread count must split the total into whole chunks. */
	for (size_t ci = 0; ci < ARRAY_SIZE(odirect_chunks); ci++)
		for (size_t ti = 0; ti < ARRAY_SIZE(odirect_threads); ti++)
			if (opt.total % (odirect_chunks[ci] * odirect_threads[ti])) {
				fprintf(stderr, "p2pmem-bench: --total must be a multiple of %s\n",
					sz(odirect_chunks[ci] * odirect_threads[ti]));
				return 2;
			}

	opt.csv = stdout;
	if (out) {
		opt.csv = fopen(out, "we");
		if (!opt.csv) {
			fprintf(stderr, "p2pmem-bench: %s: %s\n", out, strerror(errno));
			return 1;
		}
	}
	fprintf(opt.csv,
		"provider,mode,buffer,metric,size,threads,reps,unit,median,min,max,status,note\n");
	if (opt.odirect) {
		set_case("bench-disks");
		have_disks = !disks_init(&dk);
		if (!have_disks) {
			print_result(R_FAIL);
			ok = false;
		}
	}
	for (int i = optind; i < argc; i++)
		ok &= run_target(argv[i], have_disks ? &dk : NULL);
	if (out && fclose(opt.csv)) {
		fprintf(stderr, "p2pmem-bench: %s: %s\n", out, strerror(errno));
		ok = false;
	}
	return ok ? 0 : 1;
bad:
	usage(stderr);
	return 2;
}
