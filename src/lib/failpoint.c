/*
 * failpoint.c - the fault-injection points described in failpoint.h.
 *
 * The environment is read once, on the first hit.  The checks on the
 * fast path are one branch on a flag when nothing is configured.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "failpoint.h"

#define MAX_RULES 16

struct fp_rule {
	char name[128];
	int err;
	long nth;		/* 0: every hit */
	long hits;
};

static int fp_ready;
static int fp_active;
static long crash_at;
static char crash_prefix[128];
static long crash_hits;
static int log_fd = -1;
static struct fp_rule rules[MAX_RULES];
static int nrules;

static const struct {
	const char *name;
	int value;
} errnames[] = {
	{ "ENOSPC", ENOSPC }, { "EIO", EIO }, { "EXDEV", EXDEV },
	{ "EMLINK", EMLINK }, { "EPERM", EPERM }, { "EINTR", EINTR },
	{ "EACCES", EACCES }, { "EEXIST", EEXIST }, { "ENOENT", ENOENT },
	{ "EDQUOT", EDQUOT }, { "EROFS", EROFS }, { "ENOMEM", ENOMEM },
	{ "EAGAIN", EAGAIN }, { "EBUSY", EBUSY }, { "ENAMETOOLONG", ENAMETOOLONG },
};

int
ids_errno_parse(const char *s)
{
	size_t i;
	char *end;
	long v;

	for (i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (strcmp(s, errnames[i].name) == 0)
			return errnames[i].value;
	v = strtol(s, &end, 10);
	if (*s != '\0' && *end == '\0' && v > 0 && v < 4096)
		return (int)v;
	return 0;
}

static void
parse_rule(const char *spec)
{
	char buf[256], *name, *err, *nth;
	struct fp_rule *r;

	if (nrules == MAX_RULES || strlen(spec) >= sizeof(buf))
		return;
	strcpy(buf, spec);
	name = buf;
	if ((err = strchr(name, ':')) == NULL)
		return;
	*err++ = '\0';
	if ((nth = strchr(err, ':')) != NULL)
		*nth++ = '\0';
	r = &rules[nrules];
	if (strlen(name) >= sizeof(r->name) || (r->err = ids_errno_parse(err)) == 0)
		return;
	strcpy(r->name, name);
	r->nth = nth ? atol(nth) : 0;
	r->hits = 0;
	nrules++;
}

static void
fp_setup(void)
{
	const char *s;
	char buf[4096], *tok, *save;

	fp_ready = 1;
	if ((s = getenv("IDS_FAILPOINT_CRASH")) != NULL && *s) {
		const char *colon = strchr(s, ':');

		crash_at = atol(s);
		if (colon && strlen(colon + 1) < sizeof(crash_prefix))
			strcpy(crash_prefix, colon + 1);
	}
	if ((s = getenv("IDS_FAILPOINT")) != NULL && strlen(s) < sizeof(buf)) {
		strcpy(buf, s);
		for (tok = strtok_r(buf, ",", &save); tok;
		    tok = strtok_r(NULL, ",", &save))
			parse_rule(tok);
	}
	if ((s = getenv("IDS_FAILPOINT_LOG")) != NULL && *s)
		log_fd = open(s, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	fp_active = crash_at > 0 || nrules > 0 || log_fd >= 0;
}

void
ids_failpoint_reset(void)
{
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
	crash_at = crash_hits = 0;
	crash_prefix[0] = '\0';
	nrules = 0;
	fp_setup();
}

int
ids_failpoint(const char *name)
{
	int i, saved = errno;

	if (!fp_ready)
		fp_setup();
	if (!fp_active)
		return 0;
	if (log_fd >= 0) {
		char line[160];
		int n = snprintf(line, sizeof(line), "%s\n", name);

		if (n > 0 && (size_t)n < sizeof(line) && write(log_fd, line, (size_t)n) < 0)
			errno = saved;
	}
	if (crash_at > 0 &&
	    strncmp(name, crash_prefix, strlen(crash_prefix)) == 0 &&
	    ++crash_hits == crash_at)
		raise(SIGKILL);
	/* every rule of the point counts every hit; the first that fires answers it */
	for (i = 0; i < nrules; i++) {
		struct fp_rule *r = &rules[i];

		if (strcmp(r->name, name) == 0)
			r->hits++;
	}
	for (i = 0; i < nrules; i++) {
		struct fp_rule *r = &rules[i];

		if (strcmp(r->name, name) == 0 && (r->nth == 0 || r->hits == r->nth)) {
			errno = r->err;
			return -r->err;
		}
	}
	errno = saved;
	return 0;
}
