/*
 * journal.c - the change journal, its channels' cursors and the fence
 * (journal.h; spool-layout.md, "Replication: the change journal").
 *
 * sync/journal: a header line "idspool-journal 1 <base>" of fixed
 * width, then one line per entry:
 *
 *	<crc32, 8 hex digits> <uniqueid or -> <name or ->
 *	<crc32, 8 hex digits> @ <userid>	(a user's own data)
 *
 * the CRC-32 over the text after the first space, the name with every
 * byte outside 0x21-0x7e but space written as \xNN (and '\' as \x5c).
 * A position counts entry bytes from the journal's creation: the byte at
 * file offset HDR_LEN + k is position base + k.  A last line without
 * its newline is torn (a writer died in its write): readers stop before
 * it, and the next writer ends it with a newline first, so that its CRC
 * fails and it is skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "buf.h"
#include "config.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "journal.h"

#define JOURNAL "journal"
#define JOURNAL_LOCK "journal.lock"
#define WRITERS_LOCK "writers.lock"
#define FENCE "fence"
#define CURSOR "cursor"
/* the first field of a user's entry: never a uniqueid, never escaped */
#define USER_MARK "@"
#define HDR_FMT "idspool-journal 1 %020llu\n"
#define HDR_LEN 39
/* Compacted only past this size: a small journal costs nothing to keep. */
#define COMPACT_MIN 65536

static int replica_mode;

void
ids_journal_set_replica(int on)
{
	replica_mode = on;
}

int
ids_journal_enabled(const struct ids_config *cfg)
{
	if (!ids_config_switch(cfg, "sync_log"))
		return 0;
	return !replica_mode || ids_config_switch(cfg, "sync_log_chain");
}

int
ids_journal_duration(const struct ids_config *cfg, const char *key, double def, double *out)
{
	const char *v = ids_config_get(cfg, key);
	char num[64];
	size_t len;
	double mult = 1, d;
	int r;

	*out = def;
	if (v == NULL)
		return 0;
	len = strlen(v);
	if (len > 0 && len < sizeof(num)) {
		switch (v[len - 1]) {
		case 's': len--; break;
		case 'm': mult = 60; len--; break;
		case 'h': mult = 3600; len--; break;
		case 'd': mult = 86400; len--; break;
		}
	}
	if (len == 0 || len >= sizeof(num))
		return ids_error(IDS_ECONFIG, "%s: %s: '%s' is not a duration", cfg->file, key, v);
	memcpy(num, v, len);
	num[len] = '\0';
	if ((r = ids_parse_real(num, 0, 1e9, &d)) < 0)
		return ids_error(IDS_ECONFIG, "%s: %s: '%s' is not a duration", cfg->file, key, v);
	*out = d * mult;
	return 0;
}

/* --- the sync directory and its locks -------------------------------------- */

static int
sync_dir(const struct ids_config *cfg, int create, int *fdp)
{
	int root, r;

	if ((r = ids_opendir_abs(cfg->configdirectory, &root)) < 0)
		return ids_error(r, "%s: %s", cfg->configdirectory, ids_errmsg(r));
	r = ids_opendir_beneath(root, "sync", create ? IDS_OPEN_CREATE : 0, fdp);
	close(root);
	if (r < 0 && r != -ENOENT)
		return ids_error(r, "%s/sync: %s", cfg->configdirectory, ids_errmsg(r));
	return r;
}

/* Opens (creating) a lock file of dfd and locks it; nonblock: IDS_ELOCKED when held. */
static int
lock_file(int dfd, const char *name, short type, int nonblock, int *fdp)
{
	struct flock fl;
	int fd, r;

	if ((fd = openat(dfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC)) < 0 && errno == ENOENT) {
		if ((r = IDS_FAILPOINT("journal.lockfile")) < 0)
			return r;
		fd = openat(dfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
	}
	if (fd < 0)
		return -errno;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	while (fcntl(fd, nonblock ? F_OFD_SETLK : F_OFD_SETLKW, &fl) < 0) {
		if (errno == EINTR && !nonblock)
			continue;
		r = (errno == EAGAIN || errno == EACCES) ? IDS_ELOCKED : -errno;
		close(fd);
		return r;
	}
	*fdp = fd;
	return 0;
}

/* --- entries --------------------------------------------------------------- */

static int
add_field(struct ids_buf *b, const char *s)
{
	const unsigned char *p;
	int r = 0;

	if (s == NULL || *s == '\0')
		return ids_buf_addch(b, '-');
	if (strcmp(s, "-") == 0)
		return ids_buf_adds(b, "\\x2d");
	for (p = (const unsigned char *)s; *p != '\0' && r == 0; p++) {
		if (*p < 0x20 || *p > 0x7e || *p == '\\')
			r = ids_buf_printf(b, "\\x%02x", *p);
		else
			r = ids_buf_addch(b, *p);
	}
	return r;
}

/* Appends the entry t to b as a line: its CRC-32, a space, t; t is released. */
static int
seal_entry(struct ids_buf *b, struct ids_buf *t, int r)
{
	if (r == 0)
		r = ids_buf_printf(b, "%08lx %.*s\n",
		    crc32(crc32(0L, Z_NULL, 0), (const Bytef *)t->s, (uInt)t->len),
		    (int)t->len, t->s);
	ids_buf_release(t);
	return r < 0 ? -ENOMEM : 0;
}

int
ids_journal_format(struct ids_buf *b, const char *uniqueid, const char *name)
{
	struct ids_buf t = IDS_BUF_INIT;
	int r;

	if ((r = add_field(&t, uniqueid)) == 0 && (r = ids_buf_addch(&t, ' ')) == 0)
		r = add_field(&t, name);
	return seal_entry(b, &t, r);
}

int
ids_journal_format_user(struct ids_buf *b, const char *userid)
{
	struct ids_buf t = IDS_BUF_INIT;
	int r;

	if ((r = ids_buf_adds(&t, USER_MARK " ")) == 0)
		r = add_field(&t, userid);
	return seal_entry(b, &t, r);
}

/* Unescapes s[0..len) into a new string; NULL for "-" (out stays NULL). */
static int
parse_field(const char *s, size_t len, char **out)
{
	char *v, *w;
	size_t i;

	*out = NULL;
	if (len == 1 && s[0] == '-')
		return 0;
	if ((v = w = malloc(len + 1)) == NULL)
		return -ENOMEM;
	for (i = 0; i < len; i++) {
		unsigned x;

		if (s[i] == '\\' && i + 3 < len && s[i + 1] == 'x' &&
		    sscanf(s + i + 2, "%2x", &x) == 1) {
			*w++ = (char)x;
			i += 3;
		} else {
			*w++ = s[i];
		}
	}
	*w = '\0';
	*out = v;
	return 0;
}

/* Parses one line (without its newline): 1 and *e, 0 when damaged. */
static int
parse_line(const char *s, size_t len, struct ids_journal_entry *e)
{
	const char *sp;
	char hex[9];
	unsigned long crc;
	int r;

	memset(e, 0, sizeof(*e));
	if (len < 12 || s[8] != ' ')
		return 0;
	memcpy(hex, s, 8);
	hex[8] = '\0';
	if (strspn(hex, "0123456789abcdef") != 8)
		return 0;
	crc = strtoul(hex, NULL, 16);
	if (crc != crc32(crc32(0L, Z_NULL, 0), (const Bytef *)s + 9, (uInt)(len - 9)))
		return 0;
	if ((sp = memchr(s + 9, ' ', len - 9)) == NULL)
		return 0;
	if (sp == s + 10 && s[9] == USER_MARK[0]) {
		e->user = 1;
		return parse_field(sp + 1, len - (size_t)(sp + 1 - s), &e->name) < 0 ? -ENOMEM :
		    e->name == NULL ? 0 : 1;
	}
	if ((r = parse_field(s + 9, (size_t)(sp - s - 9), &e->uniqueid)) < 0 ||
	    (r = parse_field(sp + 1, len - (size_t)(sp + 1 - s), &e->name)) < 0) {
		free(e->uniqueid);
		free(e->name);
		return r;
	}
	return 1;
}

/* --- appending ------------------------------------------------------------- */

/* Opens sync/journal for appending, creating it with its header. */
static int
open_journal(int dfd, int *fdp)
{
	char hdr[HDR_LEN + 1];
	int fd, r;

	if ((fd = openat(dfd, JOURNAL, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC)) >= 0) {
		*fdp = fd;
		return 0;
	}
	if (errno != ENOENT)
		return -errno;
	/* a new journal: its header, durable with its name, before any entry */
	snprintf(hdr, sizeof(hdr), HDR_FMT, 0ULL);
	if ((r = ids_write_new(dfd, JOURNAL, hdr, HDR_LEN, 0640)) < 0)
		return r;
	if ((fd = openat(dfd, JOURNAL, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -errno;
	*fdp = fd;
	return 0;
}

/* Appends text under the journal lock of dfd, durable on return. */
static int
append_locked(int dfd, const char *text, size_t len)
{
	struct ids_buf b = IDS_BUF_INIT;
	struct stat st;
	char last = '\n';
	int fd = -1, r;

	if ((r = open_journal(dfd, &fd)) < 0)
		return r;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (st.st_size > HDR_LEN) {
		int rfd = openat(dfd, JOURNAL, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

		if (rfd < 0 || pread(rfd, &last, 1, st.st_size - 1) != 1)
			last = '\n';	/* unreadable: the entry's own CRC still guards it */
		if (rfd >= 0)
			close(rfd);
	}
	/* a torn last entry is ended here, so that it cannot swallow ours */
	if ((last != '\n' && ids_buf_addch(&b, '\n') < 0) || ids_buf_add(&b, text, len) < 0) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = IDS_FAILPOINT("journal.append")) < 0)
		goto out;
	if ((r = ids_write_all(fd, b.s, b.len)) < 0)
		goto out;
	if ((r = IDS_FAILPOINT("journal.fsync")) < 0)
		goto out;
	if (fdatasync(fd) < 0)
		r = -errno;
out:
	close(fd);
	ids_buf_release(&b);
	return r;
}

static int
append(const struct ids_config *cfg, const char *text, size_t len)
{
	int dfd, lfd, r;

	if ((r = sync_dir(cfg, 1, &dfd)) < 0)
		return r;
	if ((r = lock_file(dfd, JOURNAL_LOCK, F_WRLCK, 0, &lfd)) == 0) {
		r = append_locked(dfd, text, len);
		close(lfd);
	}
	close(dfd);
	if (r < 0 && ids_is_errno(r))
		r = ids_error(r, "%s/sync/journal: %s", cfg->configdirectory, ids_strerror(r));
	return r;
}

int
ids_journal_append(const struct ids_config *cfg, const char *text, size_t len)
{
	if (len == 0 || !ids_journal_enabled(cfg))
		return 0;
	return append(cfg, text, len);
}

int
ids_journal_fenced(const struct ids_config *cfg, char *buf, size_t size)
{
	char *s = NULL;
	size_t len = 0;
	int dfd, r;

	if (size > 0)
		buf[0] = '\0';
	if ((r = sync_dir(cfg, 0, &dfd)) < 0)
		return r == -ENOENT ? 0 : r;
	r = ids_read_file(dfd, FENCE, 4096, &s, &len);
	close(dfd);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (size > 0) {
		while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
			len--;
		snprintf(buf, size, "%.*s", (int)len, s);
	}
	free(s);
	return 1;
}

static int
fenced_error(const struct ids_config *cfg)
{
	char why[512];

	ids_journal_fenced(cfg, why, sizeof(why));
	return ids_error(IDS_EFENCED, "writes are fenced for failover (%s); "
	    "spool_sync --unfence releases them", why[0] ? why : "sync/fence");
}

int
ids_journal_fence_check(const struct ids_config *cfg)
{
	int r;

	if (!ids_config_switch(cfg, "sync_log"))
		return 0;
	if ((r = ids_journal_fenced(cfg, NULL, 0)) <= 0)
		return r;
	return fenced_error(cfg);
}

/*
 * The fence, the shared writers lock (its descriptor in *wfdp) and,
 * when the journal is on, the entry (entry[0..len)) durable.
 */
static int
writer_begin(const struct ids_config *cfg, const char *entry, size_t len, int *wfdp)
{
	int dfd, wfd = -1, r, tries;

	*wfdp = -1;
	/*
	 * The fence holds every writer of a spool with sync_log, a replica
	 * that does not journal what it applies (no sync_log_chain) included:
	 * a drained spool must not change after its peer was found equal.
	 */
	if (!ids_config_switch(cfg, "sync_log"))
		return 0;
	if ((r = sync_dir(cfg, 1, &dfd)) < 0)
		return r;
	/* the shared writers lock; held exclusively only by a drain, which fences first */
	for (tries = 0;; tries++) {
		r = lock_file(dfd, WRITERS_LOCK, F_RDLCK, 1, &wfd);
		if (r != IDS_ELOCKED)
			break;
		if ((r = ids_journal_fenced(cfg, NULL, 0)) != 0 || tries >= 500) {
			close(dfd);
			return r < 0 ? r : r == 1 ? fenced_error(cfg) :
			    ids_error(IDS_ELOCKED, "sync/writers.lock: held");
		}
		usleep(10000);	/* a drain releasing its fence */
	}
	if (r < 0) {
		close(dfd);
		return ids_error(r, "%s/sync/writers.lock: %s", cfg->configdirectory, ids_strerror(r));
	}
	if ((r = ids_journal_fenced(cfg, NULL, 0)) != 0) {
		close(wfd);
		close(dfd);
		return r < 0 ? r : fenced_error(cfg);
	}
	close(dfd);
	if (len > 0 && ids_journal_enabled(cfg) && (r = append(cfg, entry, len)) < 0) {
		close(wfd);
		return r;
	}
	*wfdp = wfd;
	return 0;
}

int
ids_journal_writer_begin(const struct ids_config *cfg, const char *uniqueid, int *wfdp)
{
	struct ids_buf b = IDS_BUF_INIT;
	int r;

	*wfdp = -1;
	if ((r = ids_journal_format(&b, uniqueid, NULL)) == 0)
		r = writer_begin(cfg, b.s, b.len, wfdp);
	ids_buf_release(&b);
	return r;
}

int
ids_journal_writer_lock(const struct ids_config *cfg, int *wfdp)
{
	return writer_begin(cfg, "", 0, wfdp);
}

int
ids_journal_append_user(const struct ids_config *cfg, const char *userid)
{
	struct ids_buf b = IDS_BUF_INIT;
	int r;

	if (!ids_journal_enabled(cfg))
		return 0;
	if ((r = ids_journal_format_user(&b, userid)) == 0)
		r = append(cfg, b.s, b.len);
	ids_buf_release(&b);
	return r;
}

/* --- reading --------------------------------------------------------------- */

static int
read_base(const char *s, size_t len, uint64_t *base)
{
	unsigned long long b;

	if (len < HDR_LEN || memcmp(s, "idspool-journal 1 ", 18) != 0 || s[HDR_LEN - 1] != '\n' ||
	    sscanf(s + 18, "%20llu", &b) != 1)
		return ids_error(IDS_ECORRUPT, "sync/journal: bad header");
	*base = b;
	return 0;
}

static int
load(const struct ids_config *cfg, char **s, size_t *len, uint64_t *base)
{
	int dfd, r;

	*s = NULL;
	*len = 0;
	*base = 0;
	if ((r = sync_dir(cfg, 0, &dfd)) < 0)
		return r == -ENOENT ? 0 : r;
	r = ids_read_file(dfd, JOURNAL, (size_t)1 << 40, s, len);
	close(dfd);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return ids_error(r, "%s/sync/journal: %s", cfg->configdirectory, ids_errmsg(r));
	if ((r = read_base(*s, *len, base)) < 0) {
		free(*s);
		*s = NULL;
	}
	return r;
}

void
ids_journal_batch_release(struct ids_journal_batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		free(b->v[i].uniqueid);
		free(b->v[i].name);
	}
	free(b->v);
	memset(b, 0, sizeof(*b));
}

int
ids_journal_read(const struct ids_config *cfg, uint64_t from, size_t max,
    struct ids_journal_batch *b)
{
	char *s;
	size_t len, off;
	uint64_t base;
	int r;

	memset(b, 0, sizeof(*b));
	if ((r = load(cfg, &s, &len, &base)) < 0)
		return r;
	if (s == NULL) {
		b->start = b->end = from;
		return 0;
	}
	if (from < base)
		from = base;
	b->start = b->end = from;
	off = HDR_LEN + (size_t)(from - base);
	while (off < len && (max == 0 || b->n < max)) {
		const char *nl = memchr(s + off, '\n', len - off);
		struct ids_journal_entry e;
		size_t ll;

		if (nl == NULL)
			break;	/* torn, or still being written */
		ll = (size_t)(nl - (s + off));
		if ((r = parse_line(s + off, ll, &e)) < 0)
			break;
		if (r == 0) {
			b->torn++;
		} else {
			struct ids_journal_entry *nv = realloc(b->v, (b->n + 1) * sizeof(*nv));

			if (nv == NULL) {
				free(e.uniqueid);
				free(e.name);
				r = -ENOMEM;
				break;
			}
			b->v = nv;
			b->v[b->n++] = e;
		}
		off += ll + 1;
		b->end = base + (off - HDR_LEN);
		r = 0;
	}
	free(s);
	if (r < 0)
		ids_journal_batch_release(b);
	return r < 0 ? r : 0;
}

int
ids_journal_end(const struct ids_config *cfg, uint64_t *base, uint64_t *end)
{
	struct ids_journal_batch b;
	int r;

	if ((r = ids_journal_read(cfg, 0, 0, &b)) < 0)
		return r;
	*end = b.end;
	ids_journal_batch_release(&b);
	{
		char *s;
		size_t len;

		if ((r = load(cfg, &s, &len, base)) < 0)
			return r;
		free(s);
	}
	return 0;
}

/* --- channels and cursors -------------------------------------------------- */

void
ids_journal_channels_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int
add_channel(char ***v, size_t *n, const char *s, size_t len)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(*nv));

	if (nv == NULL)
		return -ENOMEM;
	*v = nv;
	if ((nv[*n] = strndup(s, len)) == NULL)
		return -ENOMEM;
	(*n)++;
	return 0;
}

static int
channel_name_ok(const char *s, size_t len)
{
	static const char *const reserved[] = { JOURNAL, JOURNAL_LOCK, WRITERS_LOCK, FENCE,
	    CURSOR, "failures", "status", "findings", NULL };
	size_t i;

	if (len == 0)
		return 1;
	if (len > 64 || (len <= 2 && s[0] == '.' && (len == 1 || s[1] == '.')))
		return 0;
	for (i = 0; i < len; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
		    !(s[i] >= '0' && s[i] <= '9') && s[i] != '_' && s[i] != '-' && s[i] != '.')
			return 0;
	for (i = 0; reserved[i] != NULL; i++)
		if (strlen(reserved[i]) == len && memcmp(reserved[i], s, len) == 0)
			return 0;
	return 1;
}

int
ids_journal_channels(const struct ids_config *cfg, char ***v, size_t *n)
{
	const char *s = ids_config_get(cfg, "sync_log_channels"), *p;
	int r = 0;

	*v = NULL;
	*n = 0;
	if (s == NULL)
		return add_channel(v, n, "", 0);
	for (p = s; *p != '\0' && r == 0;) {
		size_t len;

		p += strspn(p, " \t,");
		if (*p == '\0')
			break;
		len = strcspn(p, " \t,");
		if (len == 2 && memcmp(p, "\"\"", 2) == 0)
			r = add_channel(v, n, "", 0);
		else if (!channel_name_ok(p, len))
			r = ids_error(IDS_ECONFIG, "%s: sync_log_channels: '%.*s' is not a channel "
			    "name (letters, digits, '.', '_', '-')", cfg->file, (int)len, p);
		else
			r = add_channel(v, n, p, len);
		p += len;
	}
	if (r == 0 && *n == 0)
		r = add_channel(v, n, "", 0);
	if (r < 0) {
		ids_journal_channels_free(*v, *n);
		*v = NULL;
		*n = 0;
	}
	return r;
}

int
ids_journal_channel_check(const struct ids_config *cfg, const char *name)
{
	char **v;
	size_t n, i;
	int r;

	if ((r = ids_journal_channels(cfg, &v, &n)) < 0)
		return r;
	for (i = 0; i < n && strcmp(v[i], name) != 0; i++)
		;
	ids_journal_channels_free(v, n);
	if (i == n)
		return ids_error(IDS_ECONFIG, "no channel '%s' in sync_log_channels", name);
	return 0;
}

int
ids_journal_channel_dir(const struct ids_config *cfg, const char *channel, int create,
    int *dirfdp)
{
	int dfd, r;

	if ((r = sync_dir(cfg, create, &dfd)) < 0)
		return r;
	if (channel == NULL || *channel == '\0') {
		*dirfdp = dfd;
		return 0;
	}
	r = ids_opendir_beneath(dfd, channel, create ? IDS_OPEN_CREATE : 0, dirfdp);
	close(dfd);
	return r;
}

int
ids_journal_cursor_read(const struct ids_config *cfg, const char *channel,
    uint64_t *pos, int64_t *last_ok)
{
	unsigned long long p;
	long long t;
	char *s = NULL;
	size_t len;
	int dfd, r;

	*pos = 0;
	*last_ok = 0;
	if ((r = ids_journal_channel_dir(cfg, channel, 0, &dfd)) < 0)
		return r == -ENOENT ? 0 : r;
	r = ids_read_file(dfd, CURSOR, 256, &s, &len);
	close(dfd);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	r = 0;
	if (len == 0 || s[len - 1] != '\n' || sscanf(s, "%llu %lld", &p, &t) != 2)
		r = ids_error(IDS_ECORRUPT, "sync/%s%scursor: not '<position> <time>'",
		    channel, *channel ? "/" : "");
	else {
		*pos = p;
		*last_ok = t;
	}
	free(s);
	return r;
}

int
ids_journal_cursor_write(const struct ids_config *cfg, const char *channel,
    uint64_t pos, int64_t last_ok)
{
	char line[64];
	int dfd, n, r;

	if ((r = ids_journal_channel_dir(cfg, channel, 1, &dfd)) < 0)
		return r;
	n = snprintf(line, sizeof(line), "%llu %lld\n", (unsigned long long)pos, (long long)last_ok);
	if ((r = IDS_FAILPOINT("journal.cursor")) == 0)
		r = ids_write_durable(dfd, CURSOR, line, (size_t)n, 0640);
	close(dfd);
	return r;
}

int
ids_journal_compact(const struct ids_config *cfg)
{
	char **ch, hdr[HDR_LEN + 1];
	size_t n, i;
	uint64_t end, base, pos;
	int64_t t;
	struct stat st;
	int dfd, lfd, r;

	if ((r = sync_dir(cfg, 0, &dfd)) < 0)
		return r == -ENOENT ? 0 : r;
	if (fstatat(dfd, JOURNAL, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_size < COMPACT_MIN) {
		close(dfd);
		return 0;
	}
	if ((r = lock_file(dfd, JOURNAL_LOCK, F_WRLCK, 0, &lfd)) < 0) {
		close(dfd);
		return r;
	}
	if ((r = ids_journal_end(cfg, &base, &end)) < 0 ||
	    (r = ids_journal_channels(cfg, &ch, &n)) < 0)
		goto out;
	for (i = 0; i < n && r == 0; i++) {
		if ((r = ids_journal_cursor_read(cfg, ch[i], &pos, &t)) == 0 && pos < end)
			r = 1;	/* a channel still behind */
	}
	ids_journal_channels_free(ch, n);
	if (r != 0)
		goto out;
	/* under the lock nothing was appended: the new journal starts where this one ends */
	snprintf(hdr, sizeof(hdr), HDR_FMT, (unsigned long long)end);
	if ((r = IDS_FAILPOINT("journal.compact")) == 0)
		r = ids_write_durable(dfd, JOURNAL, hdr, HDR_LEN, 0640);
out:
	close(lfd);
	close(dfd);
	return r < 0 ? r : 0;
}

/* --- the fence ------------------------------------------------------------- */

int
ids_journal_fence(const struct ids_config *cfg, const char *why, int *fdp)
{
	char line[600];
	int dfd, n, r;

	*fdp = -1;
	if ((r = sync_dir(cfg, 1, &dfd)) < 0)
		return r;
	n = snprintf(line, sizeof(line), "%.500s\n", why);
	if ((r = IDS_FAILPOINT("journal.fence")) == 0 &&
	    (r = ids_write_durable(dfd, FENCE, line, (size_t)n, 0640)) == 0)
		r = lock_file(dfd, WRITERS_LOCK, F_WRLCK, 0, fdp);	/* the writers in progress */
	close(dfd);
	return r;
}

int
ids_journal_unfence(const struct ids_config *cfg)
{
	int dfd, r;

	if ((r = sync_dir(cfg, 0, &dfd)) < 0)
		return r == -ENOENT ? 0 : r;
	if ((r = IDS_FAILPOINT("journal.unfence")) == 0) {
		if (unlinkat(dfd, FENCE, 0) < 0)
			r = errno == ENOENT ? 0 : -errno;
		else
			r = ids_fsync_dir(dfd);
	}
	close(dfd);
	return r;
}
