// SPDX-License-Identifier: GPL-2.0
/*
 * p2pcopy - copy block device to block device through a p2pmem buffer
 *
 * Does what p2pmem-test (github.com/sbates130272/p2pmem-test) does, so that
 * the way users run that tool is exercised unchanged against /dev/p2pmemN:
 *
 *   p2pcopy SRC DST [P2PMEM_FILE] -c CHUNKS -s CHUNK_SIZE -t THREADS
 *           [-o OFFSET] [--check] [--seed N]
 *
 * - SRC and DST must be block devices; both are opened O_RDWR|O_DIRECT.
 * - P2PMEM_FILE is opened O_RDWR|O_TRUNC (no O_DIRECT) and
 *   CHUNK_SIZE * THREADS bytes are mapped MAP_SHARED at OFFSET; without it
 *   the buffer is host memory (for comparison).
 * - Thread t owns slice t of the mapping and chunks t*N .. (t+1)*N-1 of the
 *   CHUNKS * CHUNK_SIZE bytes at the start of both devices (N =
 *   CHUNKS / THREADS): for each, an O_DIRECT pread from SRC into its slice,
 *   then an O_DIRECT pwrite of the slice to DST at the same offset.
 * - --check first fills that range of SRC with random data (and, unlike
 *   p2pmem-test, overwrites the same range of DST with other data so a copy
 *   that did nothing cannot pass), then reads both back through host memory
 *   and prints "MATCH ..." (exit 0) or "MISMATCH ..." (exit 1). p2pmem-test
 *   only compares an XOR checksum; this compares every byte.
 * - At exit only the first chunk is unmapped, as p2pmem-test does: with
 *   several threads this splits the VMA, and process exit drops the rest.
 *
 * Sizes take k/m/g suffixes (binary). Exit: 0 success, 1 I/O error or
 * mismatch, 2 bad usage.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <pthread.h>
#include <sys/mman.h>

#include "lib.h"

#define CHECK_PIECE	(4 * MIB)	/* host buffer size for --check */

struct cfg {
	const char *src_path, *dst_path, *p2p_path;
	int src_fd, dst_fd, p2p_fd;
	unsigned long long src_size, dst_size;
	unsigned long long chunks, chunk_size, threads, offset;
	unsigned long long size;	/* chunks * chunk_size */
	size_t map_len;			/* chunk_size * threads */
	bool check;
	uint64_t seed;
	char *buf;
};

struct worker {
	pthread_t tid;
	const struct cfg *cfg;
	unsigned long long index;
	unsigned long long done;	/* bytes copied */
	int err;			/* errno of the failed I/O, 0 if none */
	const char *op, *path;		/* the failed I/O */
	off_t err_off;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: p2pcopy SRC DST [P2PMEM_FILE] -c CHUNKS -s CHUNK_SIZE -t THREADS\n"
		"               [-o OFFSET] [--check] [--seed N]\n"
		"Copy CHUNKS*CHUNK_SIZE bytes from the start of block device SRC to DST\n"
		"with O_DIRECT, through CHUNK_SIZE*THREADS bytes of P2PMEM_FILE mapped at\n"
		"OFFSET (host memory if no P2PMEM_FILE), as p2pmem-test does.\n"
		"  -c, --chunks N          number of chunks to copy (default 1024)\n"
		"  -s, --chunk_size SIZE   bytes per chunk (default 4k; page multiple with P2PMEM_FILE)\n"
		"  -t, --threads N         copy threads, must divide CHUNKS (default 1)\n"
		"  -o, --offset SIZE       mmap offset in P2PMEM_FILE (default 0)\n"
		"      --check             write random data to SRC first, compare DST after\n"
		"      --seed N            seed for --check data (default: time based)\n"
		"Sizes accept k, m, g suffixes.\n");
}

#define HINT	"\n(p2pcopy --help shows the usage)"

/* "p2pcopy: <message>" on stderr, then exit(@code) */
static void __printf(2, 3) __attribute__((noreturn)) die(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "p2pcopy: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static unsigned long long size_arg(const char *opt, const char *val)
{
	unsigned long long v;

	if (parse_size(val, &v))
		die(2, "%s needs a size like 4096, 4k, 1m or 1g" HINT, opt);
	return v;
}

static void parse_args(struct cfg *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "chunks",	required_argument, NULL, 'c' },
		{ "chunk_size",	required_argument, NULL, 's' },
		{ "chunk-size",	required_argument, NULL, 's' },
		{ "threads",	required_argument, NULL, 't' },
		{ "offset",	required_argument, NULL, 'o' },
		{ "check",	no_argument,	   NULL, 'C' },
		{ "seed",	required_argument, NULL, 'S' },
		{ "help",	no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int opt, npos;

	while ((opt = getopt_long(argc, argv, "c:s:t:o:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			c->chunks = size_arg("--chunks", optarg);
			break;
		case 's':
			c->chunk_size = size_arg("--chunk_size", optarg);
			break;
		case 't':
			c->threads = size_arg("--threads", optarg);
			break;
		case 'o':
			c->offset = size_arg("--offset", optarg);
			break;
		case 'C':
			c->check = true;
			break;
		case 'S':
			c->seed = size_arg("--seed", optarg);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			fprintf(stderr, "(p2pcopy --help shows the usage)\n");
			exit(2);
		}
	}

	npos = argc - optind;
	if (npos < 2 || npos > 3)
		die(2, "expected SRC DST [P2PMEM_FILE], got %s positional arguments" HINT,
		    npos < 2 ? "fewer than 2" : "more than 3");
	c->src_path = argv[optind];
	c->dst_path = argv[optind + 1];
	c->p2p_path = npos == 3 ? argv[optind + 2] : NULL;

	if (!c->chunks || !c->chunk_size || !c->threads)
		die(2, "--chunks, --chunk_size and --threads must not be zero" HINT);
	if (c->chunks % c->threads)
		die(2, "--chunks must be a multiple of --threads" HINT);
	if (c->p2p_path && c->chunk_size % sysconf(_SC_PAGESIZE))
		die(2, "--chunk_size must be a multiple of the page size with a P2PMEM_FILE" HINT);
	if (c->chunks > ULLONG_MAX / c->chunk_size ||
	    c->threads > SIZE_MAX / c->chunk_size)
		die(2, "--chunks * --chunk_size is too large" HINT);
	if (!c->p2p_path && c->offset)
		die(2, "--offset is only valid with a P2PMEM_FILE" HINT);
	c->size = c->chunks * c->chunk_size;
	c->map_len = c->threads * c->chunk_size;
}

static int open_dev(const char *path, unsigned long long *size)
{
	int fd = open_blockdev(path);

	if (fd < 0 && errno == ENOTBLK)
		die(2, "%s is not a block device", path);
	if (fd < 0 || blockdev_size(fd, size))
		die(1, "%s: %s", path, strerror(errno));
	return fd;
}

static void open_files(struct cfg *c)
{
	struct stat s, d;

	c->src_fd = open_dev(c->src_path, &c->src_size);
	c->dst_fd = open_dev(c->dst_path, &c->dst_size);
	if (c->src_size < c->size || c->dst_size < c->size)
		die(2, "%s and %s must each hold --chunks * --chunk_size = %llu bytes",
		    c->src_path, c->dst_path, c->size);
	if (c->check && !fstat(c->src_fd, &s) && !fstat(c->dst_fd, &d) &&
	    s.st_rdev == d.st_rdev)
		die(2, "--check needs two different devices");
	if (!c->p2p_path)
		return;
	c->p2p_fd = open(c->p2p_path, O_RDWR | O_TRUNC | O_CLOEXEC);
	if (c->p2p_fd < 0)
		die(1, "open %s: %s", c->p2p_path, strerror(errno));
}

static void map_buffer(struct cfg *c)
{
	if (!c->p2p_path) {
		c->buf = alloc_aligned(c->map_len);
		if (!c->buf)
			die(1, "cannot allocate %zu bytes", c->map_len);
		return;
	}
	c->buf = mmap(NULL, c->map_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		      c->p2p_fd, (off_t)c->offset);
	if (c->buf == MAP_FAILED)
		die(1, "mmap %zu bytes of %s at offset %llu: %s", c->map_len, c->p2p_path,
		    c->offset, strerror(errno));
}

/* Unmap only the first chunk, like p2pmem-test; exit drops the rest. */
static void release_buffer(struct cfg *c)
{
	if (c->p2p_path)
		munmap(c->buf, c->chunk_size);
	else
		free(c->buf);
}

/*
 * Write the stream @seed over [0, size) of @fd, or with @verify compare that
 * range with it. Return: 0, or non-zero after printing what went wrong.
 */
static int stream_dev(const struct cfg *c, int fd, const char *path, uint64_t seed,
		      bool verify)
{
	char *host = alloc_aligned(CHECK_PIECE);
	uint64_t state = prng_init(seed);
	int ret = 0;

	if (!host) {
		fprintf(stderr, "p2pcopy: out of memory\n");
		return -1;
	}
	for (unsigned long long off = 0; off < c->size && !ret; off += CHECK_PIECE) {
		size_t len = c->size - off < CHECK_PIECE ? c->size - off : CHECK_PIECE;
		long long bad;

		if (!verify) {
			prng_fill(host, len, &state);
			ret = pwrite_full(fd, host, len, (off_t)off);
		} else {
			ret = pread_full(fd, host, len, (off_t)off);
		}
		if (ret) {
			fprintf(stderr, "p2pcopy: %s %s at %llu: %s\n",
				verify ? "reading" : "writing", path, off, strerror(errno));
			break;
		}
		if (verify && (bad = prng_mismatch(host, len, &state)) >= 0) {
			printf("MISMATCH on data check: %s at byte %llu does not hold the data written to %s\n",
			       path, off + bad, c->src_path);
			ret = 1;
		}
	}
	free(host);
	return ret;
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	const struct cfg *c = w->cfg;
	char *slice = c->buf + w->index * c->chunk_size;
	unsigned long long per_thread = c->chunks / c->threads;
	off_t off = (off_t)(w->index * per_thread * c->chunk_size);

	for (unsigned long long i = 0; i < per_thread; i++, off += c->chunk_size) {
		w->op = "pread";
		w->path = c->src_path;
		if (pread_full(c->src_fd, slice, c->chunk_size, off))
			goto err;
		w->op = "pwrite";
		w->path = c->dst_path;
		if (pwrite_full(c->dst_fd, slice, c->chunk_size, off))
			goto err;
		w->done += c->chunk_size;
	}
	return NULL;
err:
	w->err = errno;
	w->err_off = off;
	return NULL;
}

/* Return: bytes copied, or -1 after printing the first error. */
static long long run_workers(const struct cfg *c)
{
	struct worker *w = calloc(c->threads, sizeof(*w));
	long long total = 0;
	int failed = 0;

	if (!w)
		die(1, "out of memory");
	for (unsigned long long t = 0; t < c->threads; t++) {
		int err;

		w[t].cfg = c;
		w[t].index = t;
		err = pthread_create(&w[t].tid, NULL, worker_run, &w[t]);
		if (err)
			die(1, "pthread_create: %s", strerror(err));
	}
	for (unsigned long long t = 0; t < c->threads; t++) {
		pthread_join(w[t].tid, NULL);
		total += w[t].done;
		if (w[t].err && !failed++)
			fprintf(stderr, "p2pcopy: thread %llu: %s %zu bytes at %lld (%s): %s\n",
				t, w[t].op, (size_t)c->chunk_size, (long long)w[t].err_off,
				w[t].path, strerror(w[t].err));
	}
	free(w);
	return failed ? -1 : total;
}

static void print_header(const struct cfg *c)
{
	printf("Running p2pcopy: reading %s (%s): writing %s (%s): p2pmem buffer %s.\n",
	       c->src_path, sz(c->src_size), c->dst_path, sz(c->dst_size),
	       c->p2p_path ? c->p2p_path : "(none: host memory)");
	printf("\tchunk size = %llu : number of chunks = %llu : total = %s : thread(s) = %llu\n",
	       c->chunk_size, c->chunks, sz(c->size), c->threads);
	printf("\tbuffer = %p (%s, %s at offset %llu)\n", (void *)c->buf,
	       c->p2p_path ? "p2pmem" : "system memory", sz(c->map_len), c->offset);
	if (c->check)
		printf("\tchecking data with seed = %llu\n", (unsigned long long)c->seed);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct cfg c = { .chunks = 1024, .chunk_size = 4096, .threads = 1,
			 .p2p_fd = -1 };
	double start, secs;
	long long total;
	int ret = 0;

	parse_args(&c, argc, argv);
	if (!c.seed)
		c.seed = new_seed();
	open_files(&c);
	map_buffer(&c);
	print_header(&c);

	if (c.check &&
	    (stream_dev(&c, c.src_fd, c.src_path, c.seed, false) ||
	     stream_dev(&c, c.dst_fd, c.dst_path, ~c.seed, false))) {
		release_buffer(&c);
		return 1;
	}

	start = mono_time();
	total = run_workers(&c);
	secs = mono_time() - start;
	if (total < 0) {
		release_buffer(&c);
		return 1;
	}

	if (c.check) {
		ret = stream_dev(&c, c.src_fd, c.src_path, c.seed, true) ||
		      stream_dev(&c, c.dst_fd, c.dst_path, c.seed, true);
		if (!ret)
			printf("MATCH on data check: %llu bytes of %s equal %s\n",
			       c.size, c.dst_path, c.src_path);
	}
	printf("Transfer: %lld bytes in %.3f s: %.2f MB/s\n", total, secs,
	       secs > 0 ? total / secs / 1e6 : 0.0);
	release_buffer(&c);
	return ret ? 1 : 0;
}
