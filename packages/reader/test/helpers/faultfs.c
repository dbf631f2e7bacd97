/*
 * faultfs: a fault-injecting block source for tests of the rescue engine.
 *
 *   faultfs BACKING BADLIST MOUNTPOINT [--log=FILE] [--vanish-after=N]
 *           [--slow=FILE] [--delay-all=MS] [--slow-log=FILE] [fuse options]
 *
 * Serves one read-only file, MOUNTPOINT/disk (mode 0444), with the size and data of
 * BACKING. BADLIST holds lines `POS SIZE` (decimal byte ranges) that are unreadable.
 * A read of [off, off+len) behaves like a failing disk:
 *   - no bad byte in the range:        the data from BACKING;
 *   - first bad byte at p > off:       a short read of [off, floor(p/512)*512),
 *                                      or -EIO if that is empty;
 *   - the first byte (off) is bad:     -EIO.
 * Files are opened with direct_io (and no page cache), so every application pread
 * reaches this daemon with the application's offset and size (up to max_read), and a
 * pread loop sees the good prefix, then EIO on the next pread. O_DIRECT opens work.
 *
 * --vanish-after=N (or env FAULTFS_VANISH_AFTER=N): the first N reads behave as above,
 *   every later read returns -ENXIO (a device that fell off the bus); getattr, open
 *   and readdir keep working.
 * --log=FILE (or env FAULTFS_LOG=FILE): every read is appended as one line
 *   `OFFSET SIZE RESULT PID`, where RESULT is the number of bytes returned, `EIO` or
 *   `ENXIO`, and PID the process (thread group) that asked for it. One write(2) per
 *   line, so the file is current as soon as a read returns.
 * --slow=FILE: lines `POS SIZE MS [TIMES]`: a read overlapping [POS, POS+SIZE) sleeps
 *   MS milliseconds in the daemon before it is answered (as above), like a disk that
 *   retries a sector for seconds; only the first TIMES such reads if TIMES > 0, every
 *   one otherwise. The kernel holds the reading thread meanwhile (state D): once the
 *   request reached the daemon not even SIGKILL ends the read early, as with a real
 *   disk. A read overlapping several slow ranges sleeps for the longest of them.
 * --delay-all=MS: every read that no slow range delays sleeps MS milliseconds.
 * --slow-log=FILE: each delayed read appends `OFFSET SIZE PID MS` when its sleep
 *   starts (the read log has it when it is answered).
 *
 * Reads are served one at a time, in arrival order, like a disk's queue: a read that
 * arrives while another sleeps waits for it. Everything else (getattr, open, readdir)
 * is answered at once, also while a read sleeps (the daemon is multi-threaded), as
 * stat() and open() of a block device do not wait for the disk.
 *
 * Runs in the foreground (-f).
 * Build: gcc -O2 -Wall faultfs.c $(pkg-config --cflags --libs fuse3)
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE

#include <fuse.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SECTOR 512
#define FILE_NAME "disk"
#define FILE_PATH "/" FILE_NAME

struct range { uint64_t pos, size; };
/* A slow range: reads overlapping it sleep `ms`; `left` of them (< 0: all). */
struct slow_range { uint64_t pos, size; long long ms, left; };

static int backing_fd = -1;
static off_t disk_size;
static struct range *bad;
static size_t bad_count;
static int log_fd = -1;
static long long vanish_after = -1; /* < 0: never */
static unsigned long long read_count;
static unsigned max_read; /* from -o max_read=N; libfuse wants init() to repeat it */
static struct slow_range *slow;
static size_t slow_count;
static long long delay_all_ms;
static int slow_log_fd = -1;
/* One read at a time, as a disk serves its queue; held while a read sleeps. */
static pthread_mutex_t read_lock = PTHREAD_MUTEX_INITIALIZER;

static void die(const char *what, const char *arg)
{
	fprintf(stderr, "faultfs: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
	exit(2);
}

/*
 * Give `add` the numbers of each line of `path` that is not blank or a `#` comment:
 * `min` to `max` (at most 4) decimal numbers, or the daemon stops naming the line and
 * `form`.
 */
static void load_list(const char *path, int min, int max, const char *form, void (*add)(const unsigned long long *v, int n))
{
	FILE *f = fopen(path, "r");
	if (!f) {
		perror(path);
		exit(2);
	}
	char line[256];
	unsigned lineno = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		unsigned long long v[4] = { 0, 0, 0, 0 };
		int n = 0;
		for (char *p = line;;) {
			while (*p == ' ' || *p == '\t') p++;
			if (*p == '\n' || *p == '\0' || (n == 0 && *p == '#')) break;
			char *end;
			errno = 0;
			unsigned long long x = strtoull(p, &end, 10);
			if (end == p || errno || n == 4) {
				n = -1;
				break;
			}
			v[n++] = x;
			p = end;
		}
		if (n == 0) continue;
		if (n < min || n > max) {
			fprintf(stderr, "faultfs: %s:%u: expected `%s`\n", path, lineno, form);
			exit(2);
		}
		add(v, n);
	}
	fclose(f);
}

/* Room for one more item of `size` bytes in `array` of `count` items, `*cap` allocated. */
static void *grow(void *array, size_t count, size_t *cap, size_t size)
{
	if (count < *cap) return array;
	*cap = *cap ? *cap * 2 : 16;
	array = realloc(array, *cap * size);
	if (!array) die("out of memory", NULL);
	return array;
}

static void add_bad(const unsigned long long *v, int n)
{
	static size_t cap;
	(void)n;
	if (v[1] == 0) return;
	bad = grow(bad, bad_count, &cap, sizeof *bad);
	bad[bad_count].pos = v[0];
	bad[bad_count].size = v[1];
	bad_count++;
}

static void add_slow(const unsigned long long *v, int n)
{
	static size_t cap;
	if (v[1] == 0 || v[2] == 0) return;
	slow = grow(slow, slow_count, &cap, sizeof *slow);
	slow[slow_count].pos = v[0];
	slow[slow_count].size = v[1];
	slow[slow_count].ms = (long long)v[2];
	slow[slow_count].left = n == 4 && v[3] > 0 ? (long long)v[3] : -1;
	slow_count++;
}

/* The sleep a read of [off, end) gets (using up one of each overlapping slow range's TIMES). */
static long long delay_for(uint64_t off, uint64_t end)
{
	long long ms = -1;
	for (size_t i = 0; i < slow_count; i++) {
		uint64_t b = slow[i].pos, e = slow[i].pos + slow[i].size;
		if (b < end && e > off && slow[i].left != 0) {
			if (slow[i].left > 0) slow[i].left--;
			if (slow[i].ms > ms) ms = slow[i].ms;
		}
	}
	return ms >= 0 ? ms : delay_all_ms;
}

static void sleep_ms(long long ms)
{
	struct timespec left = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	while (nanosleep(&left, &left) < 0 && errno == EINTR) { /* sleep the rest */ }
}

/* The thread group (process) of the thread that asked: FUSE tells the thread id. */
static pid_t caller_pid(void)
{
	pid_t tid = fuse_get_context()->pid;
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
	FILE *f = fopen(path, "r");
	if (!f) return tid;
	pid_t tgid = tid;
	while (fgets(line, sizeof line, f)) {
		int v;
		if (sscanf(line, "Tgid: %d", &v) == 1) {
			tgid = (pid_t)v;
			break;
		}
	}
	fclose(f);
	return tgid;
}

/* The first bad byte in [off, end), or `end` if there is none. */
static uint64_t first_bad(uint64_t off, uint64_t end)
{
	uint64_t first = end;
	for (size_t i = 0; i < bad_count; i++) {
		uint64_t b = bad[i].pos, e = bad[i].pos + bad[i].size;
		if (b < end && e > off) {
			uint64_t p = b > off ? b : off;
			if (p < first) first = p;
		}
	}
	return first;
}

static void log_read(uint64_t off, size_t size, int result, pid_t pid)
{
	if (log_fd < 0) return;
	char line[128];
	int n;
	if (result >= 0)
		n = snprintf(line, sizeof line, "%" PRIu64 " %zu %d %d\n", off, size, result, (int)pid);
	else
		n = snprintf(line, sizeof line, "%" PRIu64 " %zu %s %d\n", off, size,
			     result == -ENXIO ? "ENXIO" : result == -EIO ? "EIO" : strerror(-result), (int)pid);
	if (write(log_fd, line, (size_t)n) != n) { /* nothing sensible to do */ }
}

static void log_slow(uint64_t off, size_t size, pid_t pid, long long ms)
{
	if (slow_log_fd < 0) return;
	char line[128];
	int n = snprintf(line, sizeof line, "%" PRIu64 " %zu %d %lld\n", off, size, (int)pid, ms);
	if (write(slow_log_fd, line, (size_t)n) != n) { /* nothing sensible to do */ }
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/* libfuse 3 refuses to start when -o max_read=N was given but conn->max_read
	 * was not set to the same value here ("init() and fuse_session_new() requested
	 * different maximum read size"). */
	if (max_read) conn->max_read = max_read;
	cfg->direct_io = 1;
	cfg->kernel_cache = 0;
	cfg->auto_cache = 0;
	cfg->attr_timeout = 0;
	cfg->entry_timeout = 0;
	cfg->negative_timeout = 0;
	return NULL;
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	memset(st, 0, sizeof *st);
	st->st_uid = getuid();
	st->st_gid = getgid();
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		return 0;
	}
	if (strcmp(path, FILE_PATH) == 0) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = disk_size;
		st->st_blksize = SECTOR;
		st->st_blocks = (disk_size + 511) / 512;
		return 0;
	}
	return -ENOENT;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)off; (void)fi; (void)flags;
	if (strcmp(path, "/") != 0) return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, FILE_NAME, NULL, 0, 0);
	return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	if (strcmp(path, FILE_PATH) != 0) return -ENOENT;
	if ((fi->flags & O_ACCMODE) != O_RDONLY) return -EROFS;
	fi->direct_io = 1;  /* every pread reaches read() with its own offset and size */
	fi->keep_cache = 0;
	return 0;
}

static int fs_read(const char *path, char *buf, size_t size, off_t offset,
		   struct fuse_file_info *fi)
{
	(void)fi;
	if (strcmp(path, FILE_PATH) != 0) return -ENOENT;
	uint64_t off = (uint64_t)offset;
	int result;
	pid_t pid = caller_pid();
	pthread_mutex_lock(&read_lock);
	read_count++;
	long long ms = delay_for(off, off + size);
	if (ms > 0) {
		log_slow(off, size, pid, ms);
		sleep_ms(ms);
	}
	if (vanish_after >= 0 && read_count > (unsigned long long)vanish_after) {
		result = -ENXIO;
	} else if (offset >= disk_size || size == 0) {
		result = 0;
	} else {
		uint64_t end = off + size;
		if (end > (uint64_t)disk_size) end = (uint64_t)disk_size;
		uint64_t p = first_bad(off, end);
		if (p < end) end = p / SECTOR * SECTOR; /* good prefix, whole sectors only */
		if (end <= off) {
			result = -EIO;
		} else {
			size_t want = (size_t)(end - off), done = 0;
			while (done < want) {
				ssize_t n = pread(backing_fd, buf + done, want - done, (off_t)(off + done));
				if (n < 0) {
					if (errno == EINTR) continue;
					break;
				}
				if (n == 0) break;
				done += (size_t)n;
			}
			result = done > 0 || want == 0 ? (int)done : -EIO;
		}
	}
	log_read(off, size, result, pid);
	pthread_mutex_unlock(&read_lock);
	return result;
}

static const struct fuse_operations ops = {
	.init = fs_init,
	.getattr = fs_getattr,
	.readdir = fs_readdir,
	.open = fs_open,
	.read = fs_read,
};

/* Remember the last max_read=N in a comma-separated -o option list. */
static void note_max_read(const char *opts)
{
	for (const char *p = opts; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
		if (strncmp(p, "max_read=", 9) == 0) max_read = (unsigned)strtoul(p + 9, NULL, 10);
	}
}

int main(int argc, char **argv)
{
	const char *log_path = getenv("FAULTFS_LOG");
	const char *vanish = getenv("FAULTFS_VANISH_AFTER");
	const char *slow_path = NULL, *delay_all = NULL, *slow_log_path = NULL;
	const char *pos[3];
	int npos = 0;
	/* fuse argv: program, fuse options..., -f, mountpoint */
	char **fargv = calloc((size_t)argc + 4, sizeof *fargv);
	int fargc = 0;
	if (!fargv) die("out of memory", NULL);
	fargv[fargc++] = argv[0];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--log=", 6) == 0) log_path = a + 6;
		else if (strncmp(a, "--vanish-after=", 15) == 0) vanish = a + 15;
		else if (strncmp(a, "--slow=", 7) == 0) slow_path = a + 7;
		else if (strncmp(a, "--delay-all=", 12) == 0) delay_all = a + 12;
		else if (strncmp(a, "--slow-log=", 11) == 0) slow_log_path = a + 11;
		else if (strcmp(a, "-o") == 0 && i + 1 < argc) { fargv[fargc++] = argv[i++]; fargv[fargc++] = argv[i]; note_max_read(argv[i]); }
		else if (a[0] == '-') { fargv[fargc++] = argv[i]; if (a[1] == 'o') note_max_read(a + 2); }
		else if (npos < 3) pos[npos++] = a;
		else die("too many arguments", a);
	}
	if (npos != 3) {
		fprintf(stderr, "usage: %s BACKING BADLIST MOUNTPOINT [--log=FILE] [--vanish-after=N] [--slow=FILE] [--delay-all=MS] [--slow-log=FILE] [fuse options]\n", argv[0]);
		return 2;
	}

	backing_fd = open(pos[0], O_RDONLY | O_CLOEXEC);
	if (backing_fd < 0) { perror(pos[0]); return 2; }
	struct stat st;
	if (fstat(backing_fd, &st) < 0) { perror(pos[0]); return 2; }
	disk_size = st.st_size;
	load_list(pos[1], 2, 2, "POS SIZE", add_bad);

	if (vanish && *vanish) {
		char *end;
		errno = 0;
		vanish_after = strtoll(vanish, &end, 10);
		if (errno || *end || vanish_after < 0) die("bad --vanish-after value", vanish);
	}
	if (slow_path && *slow_path) load_list(slow_path, 3, 4, "POS SIZE MS [TIMES]", add_slow);
	if (delay_all && *delay_all) {
		char *end;
		errno = 0;
		delay_all_ms = strtoll(delay_all, &end, 10);
		if (errno || *end || delay_all_ms < 0) die("bad --delay-all value", delay_all);
	}
	if (slow_log_path && *slow_log_path) {
		slow_log_fd = open(slow_log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (slow_log_fd < 0) { perror(slow_log_path); return 2; }
	}
	if (log_path && *log_path) {
		log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (log_fd < 0) { perror(log_path); return 2; }
	}

	fargv[fargc++] = "-f";
	fargv[fargc++] = (char *)pos[2];
	fargv[fargc] = NULL;
	return fuse_main(fargc, fargv, &ops, NULL);
}
