/*
 * findings.c - the client's findings file (findings.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "sync/findings.h"

int
ids_sync_findings_path(const struct ids_config *cfg, char *buf, size_t len)
{
	if ((size_t)snprintf(buf, len, "%s/%s/%s", cfg->configdirectory, IDS_SYNC_FINDINGS_DIR,
	    IDS_SYNC_FINDINGS_FILE) >= len)
		return ids_error(IDS_ETOOLONG, "configdirectory too long");
	return 0;
}

static int
set_str(json_t *o, const char *key, const char *v)
{
	return v == NULL || *v == '\0' ? 0 : json_object_set_new(o, key, json_string(v));
}

static int
set_num(json_t *o, const char *key, uint64_t v)
{
	return v == 0 ? 0 : json_object_set_new(o, key, json_integer((json_int_t)v));
}

/* One finding as a JSON line into b. */
static int
format_one(const struct ids_sync_finding *f, struct ids_buf *b)
{
	json_t *o = json_object();
	char *s;
	int r = 0;

	if (o == NULL)
		return -ENOMEM;
	if (json_object_set_new(o, "time", json_integer(f->time ? f->time : (json_int_t)time(NULL))) ||
	    set_str(o, "peer", f->peer) || set_str(o, "direction", f->direction) ||
	    set_str(o, "kind", f->kind) || set_str(o, "side", f->side) ||
	    set_str(o, "uniqueid", f->uniqueid) || set_str(o, "mailbox", f->name) ||
	    set_str(o, "newname", f->newname) || set_num(o, "uid", f->uid) ||
	    set_num(o, "newuid", f->newuid) || set_str(o, "guid", f->guid) ||
	    set_str(o, "otherguid", f->guid2))
		r = -ENOMEM;
	/* strings that are not UTF-8 (a folder name is bytes) are refused by jansson */
	if (r == 0 && (s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)) != NULL) {
		ids_buf_adds(b, s);
		ids_buf_addch(b, '\n');
		free(s);
	} else if (r == 0) {
		r = ids_error(IDS_EINVAL, "a finding that JSON cannot hold");
	}
	json_decref(o);
	return r;
}

int
ids_sync_findings_append(const struct ids_config *cfg, const struct ids_sync_finding *f,
    size_t n)
{
	char path[PATH_MAX], dir[PATH_MAX], last;
	struct ids_buf b = IDS_BUF_INIT;
	struct stat st;
	size_t i;
	int fd = -1, dfd, r = 0, created = 0;

	if (n == 0)
		return 0;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", cfg->configdirectory,
	    IDS_SYNC_FINDINGS_DIR) >= sizeof(dir) ||
	    (r = ids_sync_findings_path(cfg, path, sizeof(path))) < 0)
		return r < 0 ? r : ids_error(IDS_ETOOLONG, "configdirectory too long");
	for (i = 0; i < n && r == 0; i++)
		r = format_one(&f[i], &b);
	if (r == 0 && ids_buf_oom(&b))
		r = -ENOMEM;
	if (r < 0 || (r = IDS_FAILPOINT("sync.findings_write")) < 0)
		goto out;
	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		r = ids_error(-errno, "%s: %s", dir, strerror(errno));
		goto out;
	}
	if (stat(path, &st) < 0)
		created = 1;
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640)) < 0) {
		r = ids_error(-errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	/* a crash in an earlier append may have left a line without its end */
	if (fstat(fd, &st) == 0 && st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) == 1 &&
	    last != '\n' && (r = ids_write_all(fd, "\n", 1)) < 0)
		goto out;
	if ((r = ids_write_all(fd, b.s, b.len)) < 0 || (r = IDS_FAILPOINT("sync.findings_write")) < 0)
		goto out;
	if (fsync(fd) < 0) {
		r = ids_error(-errno, "%s: fsync: %s", path, strerror(errno));
		goto out;
	}
	if (created && (dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		r = ids_fsync_dir(dfd);
		close(dfd);
	}
out:
	if (fd >= 0)
		close(fd);
	ids_buf_release(&b);
	return r;
}
