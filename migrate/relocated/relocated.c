/*
 * relocated - move every legacy folder to its uniqueid path, online.
 *
 * By default a daemon: it takes $configdirectory/relocated.pid (locked,
 * so a second walker refuses to start), detaches, logs to syslog and
 * walks the spool (walker.h) pass after pass: children first, each
 * folder under its mailbox lock, failures recorded and skipped, paced by
 * --rate and by the system's IO pressure.  Between passes it sleeps
 * --interval seconds (less while grace-period cleanups are pending).
 * SIGTERM finishes the current folder and exits; SIGHUP re-reads the
 * configuration before the next folder.  -1 runs one pass in the
 * foreground, -n prints the plan, -s prints the progress that
 * mailboxes.db and the daemon's status file record.
 */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "intent.h"
#include "mboxlist.h"
#include "mboxname.h"
#include "relocate.h"
#include "tool.h"
#include "walker.h"

#define SYNOPSIS "relocated [-C conf] [-1] [-n] [-s] [-i] [-p part] [-u user] " \
	"[--strategy link|rename] [--grace S] [--rate N] [--jobs N] " \
	"[--io-pressure PCT] [--interval S] [--log stderr|FILE] [--json] [-q] [-v]"

static const char help[] =
    "  -C conf              the configuration file (default /etc/idspool.conf)\n"
    "  -1                   one pass in the foreground, then the grace period\n"
    "  -n                   print the plan, change nothing\n"
    "  -s                   print the progress (and the running daemon's)\n"
    "  -i                   names are internal (example.com!user.john^doe.Sent)\n"
    "  -p part              only the folders on this partition\n"
    "  -u user              only the folders of this owner\n"
    "  --strategy S         link (copy by hard links) or rename (default link)\n"
    "  --grace S            keep old names this many seconds (default 60)\n"
    "  --rate N             at most N files per second (default 0: no limit)\n"
    "  --jobs N             N workers per partition (default 1)\n"
    "  --io-pressure PCT    pause while IO pressure is above PCT (default 50)\n"
    "  --interval S         seconds between the daemon's passes (default 600)\n"
    "  --log stderr|FILE    the daemon logs there instead of to syslog\n"
    "  --json               with -s, -n, -1: JSON output\n"
    "  -q                   no summary, no progress bar\n"
    "  -v                   print each folder migrated\n";

#define PIDFILE		"relocated.pid"
#define STATUSFILE	"relocated.status"
#define DEFAULT_GRACE	60
#define DEFAULT_PRESSURE 50
#define DEFAULT_INTERVAL 600
#define MAX_JOBS	64	/* --jobs: worker processes per partition */
#define MAX_SECONDS	31536000	/* --grace, --interval: a year */
#define MAX_RATE	1e9	/* --rate: files per second */
#define STATUS_EVERY	2.0	/* seconds between status file writes */
#define PIDFILE_TRIES	50	/* tenths of a second to wait for a dead walker's lock */
#define PENDING_RECHECK	10	/* seconds between passes while cleanups wait */

static volatile sig_atomic_t interrupted, terminating, reloading;

/* A setting: from the command line, else imapd.conf, else the default. */
struct setting {
	const char *key;	/* imapd.conf key */
	const char *opt;	/* option name, for messages */
	double def;
	double min, max;	/* the range accepted */
	int whole;		/* a whole number (else decimals too) */
	int given;		/* set on the command line */
	double value;
};

enum { S_GRACE, S_RATE, S_PRESSURE, S_INTERVAL, S_JOBS, NSETTINGS };

struct relocated {
	const char *conf;		/* absolute */
	int once, dry, status, json, quiet, verbose, internal;
	const char *partition, *user;
	const char *strategy_arg;	/* --strategy, or NULL */
	enum ids_strategy strategy;
	struct setting set[NSETTINGS];
	struct ids_config cfg;
	int daemon;			/* detached: log to syslog (or logf) */
	const char *log_arg;		/* --log */
	FILE *logf;			/* --log: the daemon's log instead of syslog */
	char ident[256];		/* [syslog_prefix/]relocated */
	double last_seen_at;		/* when a folder was last done (the bar) */
	unsigned long last_seen;
	int bar;			/* draw a progress bar on stderr */
	int pidfd;
	unsigned pass;
	time_t started;
	const char *state;
	double last_status;
	json_t *plan;			/* -n --json */
};

/* --- messages -------------------------------------------------------- */

static void logmsg(struct relocated *d, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
logmsg(struct relocated *d, int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (d->daemon && d->logf != NULL) {
		char stamp[32];
		time_t t = time(NULL);
		struct tm tm;

		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
		fprintf(d->logf, "%s %s[%ld]: ", stamp, d->ident, (long)getpid());
		vfprintf(d->logf, fmt, ap);
		fputc('\n', d->logf);
		fflush(d->logf);
	} else if (d->daemon) {
		vsyslog(prio, fmt, ap);
	} else if (prio <= LOG_WARNING) {
		if (d->bar)
			fputs("\r\033[K", stderr);
		vwarnx(fmt, ap);
	} else {
		vprintf(fmt, ap);
		putchar('\n');
		fflush(stdout);
	}
	va_end(ap);
}

/*
 * The name the daemon logs under: Cyrus's "PREFIX/relocated" when
 * syslog_prefix (or the environment's CYRUS_SYSLOG_PREFIX, which wins,
 * as in Cyrus) sets a prefix.
 */
static void
set_ident(struct relocated *d)
{
	const char *prefix = getenv("CYRUS_SYSLOG_PREFIX");

	if (prefix == NULL || prefix[0] == '\0')
		prefix = ids_config_get(&d->cfg, "syslog_prefix");
	if (prefix != NULL && prefix[0] != '\0')
		snprintf(d->ident, sizeof(d->ident), "%s/relocated", prefix);
	else
		snprintf(d->ident, sizeof(d->ident), "relocated");
}

/* The name as the user spells it (external unless -i). */
static const char *
shown_name(const struct relocated *d, const char *internal, char *buf, size_t size)
{
	struct ids_mbname mb;

	if (d->internal || ids_mbname_parse_internal(&mb, internal, 0) < 0 ||
	    ids_mbname_external(&mb, &d->cfg, buf, size) < 0)
		snprintf(buf, size, "%s", internal);
	return buf;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- options and settings -------------------------------------------- */

/* Reports a bad command-line value of setting which and exits 2. */
static void
set_option(struct relocated *d, int which, const char *arg)
{
	struct setting *s = &d->set[which];
	unsigned long long n;
	int r;

	if (s->whole) {
		if ((r = tool_uint(s->opt, arg, (unsigned long long)s->min,
		    (unsigned long long)s->max, &n)) == 0)
			s->value = (double)n;
	} else {
		r = tool_real(s->opt, arg, s->min, s->max, &s->value);
	}
	if (r < 0)
		tool_usage(SYNOPSIS);
	s->given = 1;
}

/* The value of setting which in cfg (1), not set (0), or a bad one (< 0). */
static int
config_setting(const struct ids_config *cfg, const struct setting *s, double *v)
{
	unsigned long long n;
	int r;

	if (!s->whole)
		return ids_config_real(cfg, s->key, s->min, s->max, v);
	if ((r = ids_config_uint(cfg, s->key, (unsigned long long)s->min,
	    (unsigned long long)s->max, &n)) == 1)
		*v = (double)n;
	return r;
}

static void
init_settings(struct relocated *d)
{
	static const struct setting defs[NSETTINGS] = {
		[S_GRACE] = { "relocated_grace", "--grace", DEFAULT_GRACE, 0, MAX_SECONDS, 1, 0, 0 },
		[S_RATE] = { "relocated_rate", "--rate", 0, 0, MAX_RATE, 0, 0, 0 },
		[S_PRESSURE] = { "relocated_io_pressure", "--io-pressure", DEFAULT_PRESSURE,
		    0, 100, 0, 0, 0 },
		[S_INTERVAL] = { "relocated_interval", "--interval", DEFAULT_INTERVAL,
		    0, MAX_SECONDS, 1, 0, 0 },
		[S_JOBS] = { "relocated_jobs", "--jobs", 1, 1, MAX_JOBS, 1, 0, 0 },
	};

	memcpy(d->set, defs, sizeof(defs));
	d->pidfd = -1;
	d->state = "starting";
}

static void
check_args(struct relocated *d, int argc)
{
	if (optind != argc) {
		warnx("unexpected argument");
		tool_usage(SYNOPSIS);
	}
	if (d->once + d->dry + d->status > 1) {
		warnx("-1, -n and -s exclude each other");
		tool_usage(SYNOPSIS);
	}
	if (d->strategy_arg && ids_strategy_parse(d->strategy_arg, &d->strategy) < 0) {
		warnx("--strategy: %s", ids_errmsg(IDS_EINVAL));
		tool_usage(SYNOPSIS);
	}
}

static void
parse_args(struct relocated *d, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "strategy", required_argument, NULL, 'S' },
		{ "grace", required_argument, NULL, 'G' },
		{ "rate", required_argument, NULL, 'R' },
		{ "io-pressure", required_argument, NULL, 'P' },
		{ "interval", required_argument, NULL, 'I' },
		{ "jobs", required_argument, NULL, 'J' },
		{ "log", required_argument, NULL, 'L' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "C:1nsip:u:qv", longopts, NULL)) != -1) {
		switch (c) {
		case 'C': d->conf = optarg; break;
		case '1': d->once = 1; break;
		case 'n': d->dry = 1; break;
		case 's': d->status = 1; break;
		case 'i': d->internal = 1; break;
		case 'p': d->partition = optarg; break;
		case 'u': d->user = optarg; break;
		case 'q': d->quiet = 1; break;
		case 'v': d->verbose = 1; break;
		case 'j': d->json = 1; break;
		case 'S': d->strategy_arg = optarg; break;
		case 'G': set_option(d, S_GRACE, optarg); break;
		case 'R': set_option(d, S_RATE, optarg); break;
		case 'P': set_option(d, S_PRESSURE, optarg); break;
		case 'I': set_option(d, S_INTERVAL, optarg); break;
		case 'J': set_option(d, S_JOBS, optarg); break;
		case 'L':
			if (optarg[0] == '\0') {
				warnx("--log: give stderr or a file");
				tool_usage(SYNOPSIS);
			}
			d->log_arg = optarg;
			break;
		case 'h': tool_help_options(SYNOPSIS, help);
		case 'V': tool_version();
		default: tool_usage(SYNOPSIS);
		}
	}
	check_args(d, argc);
}

/*
 * Fills the settings not given on the command line from cfg.  Returns
 * 0, or -1 after reporting a bad value, followed by then (the settings
 * are then unchanged).
 */
static int
apply_config(struct relocated *d, const struct ids_config *cfg, const char *then)
{
	double v[NSETTINGS];
	enum ids_strategy strategy = d->strategy;
	const char *s;
	int i, r;

	for (i = 0; i < NSETTINGS; i++) {
		v[i] = d->set[i].given ? d->set[i].value : d->set[i].def;
		if (d->set[i].given)
			continue;
		if ((r = config_setting(cfg, &d->set[i], &v[i])) < 0) {
			logmsg(d, LOG_ERR, "%s%s", ids_errmsg(r), then);
			return -1;
		}
	}
	if (d->strategy_arg == NULL) {
		strategy = IDS_STRATEGY_LINK;
		if ((s = ids_config_get(cfg, "relocated_strategy")) != NULL &&
		    ids_strategy_parse(s, &strategy) < 0) {
			logmsg(d, LOG_ERR, "%s: relocated_strategy: %s%s", cfg->file,
			    ids_errmsg(IDS_EINVAL), then);
			return -1;
		}
	}
	for (i = 0; i < NSETTINGS; i++)
		d->set[i].value = v[i];
	d->strategy = strategy;
	return 0;
}

/* --- the status file ------------------------------------------------- */

static int
config_file_path(const struct relocated *d, const char *name, char *buf, size_t size)
{
	if ((size_t)snprintf(buf, size, "%s/%s", d->cfg.configdirectory, name) >= size)
		return ids_error(IDS_ETOOLONG, "%s/%s: path too long", d->cfg.configdirectory, name);
	return 0;
}

static double
rate_of(double n, double secs)
{
	return secs > 0.5 ? n / secs : 0;
}

static json_t *
progress_json(const struct relocated *d, const struct ids_walk_progress *p)
{
	double fr = rate_of((double)p->folders_done, p->elapsed);
	long left = (long)p->folders_total - (long)(p->folders_done + p->folders_failed +
	    p->folders_skipped);

	if (left < 0)
		left = 0;
	return json_pack("{s:I,s:s,s:i,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:f,s:f,s:o}",
	    "pid", (json_int_t)getpid(), "state", d->state, "pass", (int)d->pass,
	    "strategy", ids_strategy_name(d->strategy),
	    "started", (json_int_t)d->started, "updated", (json_int_t)time(NULL),
	    "folders_total", (json_int_t)p->folders_total,
	    "folders_done", (json_int_t)p->folders_done,
	    "folders_failed", (json_int_t)p->folders_failed,
	    "folders_skipped", (json_int_t)p->folders_skipped,
	    "folders_left", (json_int_t)left,
	    "files_done", (json_int_t)p->files_done,
	    "pending", (json_int_t)p->pending, "workers", p->workers,
	    "files_per_second", rate_of((double)p->files_done, p->elapsed),
	    "folders_per_second", fr,
	    "eta_seconds", fr > 0 ? json_integer((json_int_t)((double)left / fr)) : json_null());
}

/* Replaces the status file (failpoint relocated.status); errors are only logged. */
static void
write_status(struct relocated *d, const struct ids_walk_progress *p)
{
	json_t *j = progress_json(d, p);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	int dirfd, r = -ENOMEM;

	if (text != NULL && (r = ids_opendir_abs(d->cfg.configdirectory, &dirfd)) == 0) {
		if ((r = IDS_FAILPOINT("relocated.status")) == 0)
			r = ids_write_durable(dirfd, STATUSFILE, text, strlen(text), 0644);
		close(dirfd);
	}
	if (r < 0)
		logmsg(d, LOG_WARNING, "%s/%s: %s", d->cfg.configdirectory, STATUSFILE, ids_errmsg(r));
	free(text);
	json_decref(j);
	d->last_status = now();
}

static void
remove_status(struct relocated *d)
{
	char path[PATH_MAX];

	if (config_file_path(d, STATUSFILE, path, sizeof(path)) == 0 &&
	    IDS_FAILPOINT("relocated.status_remove") == 0)
		unlink(path);
}

/* --- progress -------------------------------------------------------- */

static void
draw_bar(struct relocated *d, const struct ids_walk_progress *p)
{
	unsigned long seen = p->folders_done + p->folders_failed + p->folders_skipped;
	double frac = p->folders_total ? (double)seen / (double)p->folders_total : 1.0;
	double fr = rate_of((double)p->folders_done, p->elapsed);
	char bar[31];
	int i, fill;

	if (frac > 1.0)
		frac = 1.0;
	if (seen != d->last_seen || d->last_seen_at == 0) {
		d->last_seen = seen;
		d->last_seen_at = now();
	}
	fill = (int)(frac * 30.0);
	for (i = 0; i < 30; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[30] = '\0';
	/* Every folder walked: what is left is the grace period's wait. */
	if (p->waiting && p->pending > 0 && seen >= p->folders_total) {
		double left = d->set[S_GRACE].value - (now() - d->last_seen_at);

		fprintf(stderr, "\r\033[K[%s] %lu/%lu folders, %llu files; waiting %.0f s of grace "
		    "(%lu old name%s kept)", bar, seen, p->folders_total, p->files_done,
		    left > 0 ? left : 0, p->pending, p->pending == 1 ? "" : "s");
		return;
	}
	fprintf(stderr, "\r\033[K[%s] %3d%% %lu/%lu folders, %llu files, %.0f files/s",
	    bar, (int)(frac * 100.0), seen, p->folders_total, p->files_done,
	    rate_of((double)p->files_done, p->elapsed));
	if (fr > 0 && seen < p->folders_total) {
		long eta = (long)((double)(p->folders_total - seen) / fr);

		fprintf(stderr, ", ETA %ld:%02ld:%02ld", eta / 3600, eta / 60 % 60, eta % 60);
	}
	if (p->waiting)
		fputs(" (paused)", stderr);
}

static void
on_progress(const struct ids_walk_progress *p, void *rock)
{
	struct relocated *d = rock;

	d->state = p->waiting ? "waiting" : "walking";
	if (d->bar)
		draw_bar(d, p);
	if (now() - d->last_status >= STATUS_EVERY)
		write_status(d, p);
}

static void
print_plan(struct relocated *d, const struct ids_walk_event *ev)
{
	char name[IDS_MBNAME_MAX * 4 + 8];

	if (d->json) {
		json_array_append_new(d->plan, json_pack("{s:s,s:s,s:s,s:s*,s:s*}",
		    "name", shown_name(d, ev->name, name, sizeof(name)),
		    "old", ev->olddir, "new", ev->newdir,
		    "oldmeta", ev->oldmeta, "newmeta", ev->newmeta));
		return;
	}
	printf("%s -> %s\n", ev->olddir, ev->newdir);
	if (ev->oldmeta != NULL && ev->newmeta != NULL)
		printf("%s -> %s\n", ev->oldmeta, ev->newmeta);
}

static void
on_event(const struct ids_walk_event *ev, void *rock)
{
	struct relocated *d = rock;
	char name[IDS_MBNAME_MAX * 4 + 8];

	switch (ev->what) {
	case IDS_WALK_PLAN:
		print_plan(d, ev);
		break;
	case IDS_WALK_DONE:
		if (d->verbose)
			logmsg(d, LOG_INFO, "%s: %s -> %s (%lu files%s)",
			    shown_name(d, ev->name, name, sizeof(name)), ev->olddir, ev->newdir,
			    ev->files, ev->pending ? ", old names kept for the grace period" : "");
		break;
	case IDS_WALK_FAILED:
		logmsg(d, LOG_ERR, "%s: %s", shown_name(d, ev->name, name, sizeof(name)), ev->reason);
		break;
	case IDS_WALK_FOREIGN:
		logmsg(d, LOG_WARNING, "%s: %lu file%s not part of the folder left in place",
		    ev->olddir, ev->files, ev->files == 1 ? "" : "s");
		break;
	case IDS_WALK_ERROR:
		logmsg(d, LOG_ERR, "%s", ev->reason);
		break;
	case IDS_WALK_WORKER:
		if (!d->verbose)
			break;
		if (ev->jobs > 1)
			logmsg(d, LOG_INFO, "partition %s, worker %u/%u: pid %ld",
			    ev->partition ? ev->partition : "*", ev->job + 1, ev->jobs, (long)ev->pid);
		else
			logmsg(d, LOG_INFO, "partition %s: worker %ld", ev->partition, (long)ev->pid);
		break;
	}
}

/* --- -s: progress from mailboxes.db and the status file -------------- */

/*
 * The pid of the running walker, or 0: the pidfile's lock is the proof,
 * and the pid in the file must be alive (the workers of a walker killed
 * with -9 hold its lock for the moment they take to die with it); -1
 * when locked before the pid was written.
 */
static long
running_pid(struct relocated *d)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char path[PATH_MAX], buf[32];
	ssize_t n;
	int fd;
	long pid = 0;

	if (config_file_path(d, PIDFILE, path, sizeof(path)) < 0 ||
	    (fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return 0;
	if (fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) {
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		pid = strtol(buf, NULL, 10);
		if (pid <= 0)
			pid = -1;	/* running, pid not written yet */
		else if (pid > INT_MAX || (kill((pid_t)pid, 0) < 0 && errno == ESRCH))
			pid = 0;	/* dead: what holds the lock is dying with it */
	}
	close(fd);
	return pid;
}

struct failures {
	struct relocated *d;
	json_t *list;
	json_t *badindex;
};

static int
on_failure(const char *name, const char *uniqueid, int64_t when, const char *reason,
    void *rock)
{
	struct failures *f = rock;
	char shown[IDS_MBNAME_MAX * 4 + 8];
	size_t n = strlen(name);
	json_t *it;

	/* The record starts with the name the folder had then: drop it if current. */
	if (strncmp(reason, name, n) == 0 && strncmp(reason + n, ": ", 2) == 0)
		reason += n + 2;
	shown_name(f->d, name, shown, sizeof(shown));
	it = json_pack("{s:s,s:s,s:I,s:s}", "name", shown, "uniqueid", uniqueid,
	    "time", (json_int_t)when, "reason", reason);
	/* Never a failure counted and not listed. */
	if (it == NULL || json_array_append_new(f->list, it) < 0)
		return ids_error(-ENOMEM, "%s: cannot list its failure", shown);
	return 0;
}

static int
on_badindex(const char *name, const char *uniqueid, const char *reason, void *rock)
{
	struct failures *f = rock;
	char shown[IDS_MBNAME_MAX * 4 + 8], why[1024];
	json_t *it;

	shown_name(f->d, name, shown, sizeof(shown));
	it = json_pack("{s:s,s:s,s:s}", "name", shown, "uniqueid", uniqueid,
	    "reason", tool_printable(reason, why, sizeof(why)));
	if (it == NULL || json_array_append_new(f->badindex, it) < 0)
		return ids_error(-ENOMEM, "%s: cannot list its index", shown);
	return 0;
}

static void
print_failures_text(json_t *list)
{
	char stamp[32];
	struct tm tm;
	json_t *it;
	size_t i;
	time_t t;

	json_array_foreach(list, i, it) {
		t = (time_t)json_integer_value(json_object_get(it, "time"));
		strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", gmtime_r(&t, &tm));
		printf("  %s (%s UTC): %s\n", json_string_value(json_object_get(it, "name")),
		    stamp, json_string_value(json_object_get(it, "reason")));
	}
}

/* The running daemon's status file as JSON, or NULL. */
static json_t *
daemon_status(struct relocated *d, long pid)
{
	char path[PATH_MAX];
	json_t *j;

	if (pid == 0 || config_file_path(d, STATUSFILE, path, sizeof(path)) < 0)
		return NULL;
	if ((j = json_load_file(path, 0, NULL)) == NULL)
		j = json_object();
	json_object_set_new(j, "pid", json_integer(pid));
	return j;
}

static void
print_daemon_text(json_t *st)
{
	json_t *eta;
	long e;

	if (st == NULL) {
		printf("relocated: not running\n");
		return;
	}
	printf("relocated: running, pid %lld", (long long)json_integer_value(json_object_get(st, "pid")));
	if (json_object_get(st, "state") == NULL) {
		putchar('\n');
		return;
	}
	printf(", pass %lld %s: %lld of %lld folders, %.1f files/s, %.2f folders/s",
	    (long long)json_integer_value(json_object_get(st, "pass")),
	    json_string_value(json_object_get(st, "state")),
	    (long long)json_integer_value(json_object_get(st, "folders_done")),
	    (long long)json_integer_value(json_object_get(st, "folders_total")),
	    json_number_value(json_object_get(st, "files_per_second")),
	    json_number_value(json_object_get(st, "folders_per_second")));
	if (json_is_integer(eta = json_object_get(st, "eta_seconds"))) {
		e = (long)json_integer_value(eta);
		printf(", ETA %ld:%02ld:%02ld", e / 3600, e / 60 % 60, e % 60);
	}
	putchar('\n');
}

static void
print_badindex_text(json_t *list)
{
	json_t *it;
	size_t i;

	json_array_foreach(list, i, it)
		printf("  %s: %s\n", json_string_value(json_object_get(it, "name")),
		    json_string_value(json_object_get(it, "reason")));
}

static void
print_census_text(const struct ids_walk_census *c)
{
	unsigned long all = c->legacy + c->uniqueid;

	printf("folders: %lu legacy, %lu uniqueid (%.1f%% migrated)\n", c->legacy, c->uniqueid,
	    all ? 100.0 * (double)c->uniqueid / (double)all : 100.0);
	printf("files left: %llu (index records of the legacy folders)\n", c->files_left);
	if (c->unreadable)
		printf("unreadable indexes: %lu legacy folder%s, not counted above:\n",
		    c->unreadable, c->unreadable == 1 ? "" : "s");
}

/* --- -s: intents recovery set aside ---------------------------------- */

struct asides {
	struct relocated *d;
	json_t *list;
};

static int
on_aside(const char *id, const struct ids_intent *in, const char *why, void *rock)
{
	struct asides *a = rock;
	char name[2 * IDS_MBNAME_MAX], shown[2 * IDS_MBNAME_MAX], reason[1024];
	json_t *j;

	shown_name(a->d, in->name ? in->name : "?", name, sizeof(name));
	j = json_pack("{s:s, s:s, s:s, s:s}", "name", tool_printable(name, shown, sizeof(shown)),
	    "uniqueid", id, "op", in->op, "reason", tool_printable(why, reason, sizeof(reason)));
	return j == NULL || json_array_append_new(a->list, j) < 0 ? -ENOMEM : 0;
}

static int
asides_txn(struct ids_txn *txn, void *rock)
{
	return ids_intent_foreach_aside(txn, on_aside, rock);
}

static void
print_asides_text(json_t *list)
{
	json_t *it;
	size_t i;

	printf("set-aside intents: %zu\n", json_array_size(list));
	json_array_foreach(list, i, it)
		printf("  %s (Z%s, %s): %s\n", json_string_value(json_object_get(it, "name")),
		    json_string_value(json_object_get(it, "uniqueid")),
		    json_string_value(json_object_get(it, "op")),
		    json_string_value(json_object_get(it, "reason")));
}

static int
do_status(struct relocated *d, const struct ids_walk_opts *filter)
{
	struct ids_mboxlist *mbl = tool_open_mboxlist(&d->cfg, IDS_MBOXLIST_RDONLY);
	struct failures f = { d, json_array(), json_array() };
	struct ids_walk_census c;
	json_t *st = daemon_status(d, running_pid(d)), *out;
	int r = f.list && f.badindex ? ids_walk_census(mbl, filter, &c, on_failure, on_badindex,
	    &f) : -ENOMEM;
	struct asides as = { d, json_array() };

	if (r == 0)
		r = as.list ? ids_mboxlist_read(mbl, asides_txn, &as) : -ENOMEM;

	if (r < 0)
		warnx("%s: %s", ids_mboxlist_path(mbl), tool_reason(ids_mboxlist_path(mbl), r));
	ids_mboxlist_close(mbl);
	if (r < 0) {
		json_decref(st);
		json_decref(f.list);
		json_decref(f.badindex);
		json_decref(as.list);
		return IDS_EXIT_ENV;
	}
	if (!d->json) {
		print_census_text(&c);
		print_badindex_text(f.badindex);
		printf("failed folders: %lu\n", c.failures);
		print_failures_text(f.list);
		print_asides_text(as.list);
		json_decref(as.list);
		print_daemon_text(st);
		json_decref(st);
		json_decref(f.list);
		json_decref(f.badindex);
		return IDS_EXIT_OK;
	}
	out = json_pack("{s:{s:I,s:I},s:I,s:I,s:o,s:o,s:o,s:o}",
	    "folders", "legacy", (json_int_t)c.legacy, "uniqueid", (json_int_t)c.uniqueid,
	    "files_left", (json_int_t)c.files_left, "unreadable_indexes", (json_int_t)c.unreadable,
	    "bad_indexes", f.badindex, "failures", f.list, "set_aside", as.list,
	    "daemon", st ? st : json_null());
	json_dumpf(out, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(out);
	return IDS_EXIT_OK;
}

/* --- -n: the plan ---------------------------------------------------- */

static int
do_plan(struct relocated *d, struct ids_walk_opts *wo)
{
	struct ids_walk_progress res;
	char db[PATH_MAX];
	int r;

	wo->dry_run = 1;
	if (d->json && (d->plan = json_array()) == NULL)
		return IDS_EXIT_ENV;
	if ((r = ids_walk_run(&d->cfg, wo, &res)) < 0) {
		snprintf(db, sizeof(db), "%s/mailboxes.db", d->cfg.configdirectory);
		warnx("%s: %s", db, tool_reason(db, r));
		return IDS_EXIT_ENV;
	}
	if (d->json) {
		json_dumpf(d->plan, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(d->plan);
	}
	return IDS_EXIT_OK;
}

/* --- the pidfile, detaching, signals --------------------------------- */

/*
 * Opens and locks $configdirectory/relocated.pid (an open file
 * description lock: it stays with the daemon's copy of the descriptor
 * across fork and goes when the last holder exits).  Exits 3 if another
 * walker holds it.
 */
static void
take_pidfile(struct relocated *d)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char path[PATH_MAX];
	long pid;
	int r, tries;

	if ((r = config_file_path(d, PIDFILE, path, sizeof(path))) < 0)
		errx(IDS_EXIT_ENV, "%s", ids_errmsg(r));
	if ((r = IDS_FAILPOINT("relocated.pidfile")) < 0 ||
	    (d->pidfd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644)) < 0)
		errx(IDS_EXIT_ENV, "%s: %s", path, strerror(r < 0 ? -r : errno));
	/*
	 * The lock of a walker killed with -9 goes with its last worker,
	 * which the kernel kills with it (PR_SET_PDEATHSIG): give those a
	 * moment rather than name a dead pid as running.
	 */
	for (tries = 0; fcntl(d->pidfd, F_OFD_SETLK, &fl) < 0; tries++) {
		if (errno != EAGAIN && errno != EACCES)
			errx(IDS_EXIT_ENV, "%s: lock: %s", path, strerror(errno));
		if ((pid = running_pid(d)) > 0)
			errx(IDS_EXIT_ENV, "%s: already running (pid %ld)", path, pid);
		if (pid < 0)
			errx(IDS_EXIT_ENV, "%s: already running", path);
		if (tries >= PIDFILE_TRIES)
			errx(IDS_EXIT_ENV, "%s: locked by processes of a walker that is gone; "
			    "try again when they have exited", path);
		usleep(100 * 1000);
	}
}

/* Writes our pid into the locked pidfile; 0 or a negative code. */
static int
write_pidfile(struct relocated *d)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	int r;

	if ((r = IDS_FAILPOINT("relocated.pidfile_write")) < 0)
		return r;
	if (ftruncate(d->pidfd, 0) < 0 || pwrite(d->pidfd, buf, (size_t)n, 0) != n ||
	    fsync(d->pidfd) < 0)
		return ids_errno();
	return 0;
}

static void
clear_pidfile(struct relocated *d)
{
	if (d->pidfd < 0)
		return;
	if (IDS_FAILPOINT("relocated.pidfile_clear") == 0 && ftruncate(d->pidfd, 0) < 0)
		logmsg(d, LOG_WARNING, "%s: %s", PIDFILE, strerror(errno));
	close(d->pidfd);
	d->pidfd = -1;
}

static void
to_devnull(int keep_stderr)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	if (!keep_stderr)
		dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

/*
 * The classic double fork: the first child leaves the session, the
 * grandchild (no session leader, so it can never get a terminal back)
 * writes the pidfile and only then lets the original process exit 0,
 * so that a service manager reading the pidfile finds the right pid.
 */
static void
daemonise(struct relocated *d)
{
	int p[2], r;
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC) < 0)
		err(IDS_EXIT_ENV, "pipe");
	fflush(NULL);
	if ((pid = fork()) < 0)
		err(IDS_EXIT_ENV, "fork");
	if (pid > 0) {
		close(p[1]);
		_exit(read(p[0], &c, 1) == 1 ? IDS_EXIT_OK : IDS_EXIT_ENV);
	}
	close(p[0]);
	if (setsid() < 0 || (pid = fork()) < 0)
		err(IDS_EXIT_ENV, "detach");
	if (pid > 0)
		_exit(IDS_EXIT_OK);
	if (chdir("/") < 0)
		err(IDS_EXIT_ENV, "chdir /");
	if ((r = write_pidfile(d)) < 0)
		errx(IDS_EXIT_ENV, "%s: %s", PIDFILE, ids_errmsg(r));
	umask(027);
	to_devnull(d->logf == stderr);
	d->daemon = 1;
	if (d->logf == NULL)
		openlog(d->ident, LOG_PID, LOG_MAIL);
	if (write(p[1], "1", 1) != 1)
		_exit(IDS_EXIT_ENV);
	close(p[1]);
}

/* Handlers only set flags; the walk checks them between folders. */
static void
on_terminate(int sig)
{
	terminating = 1;
	interrupted = 1;
}

static void
on_reload(int sig)
{
	reloading = 1;
	interrupted = 1;
}

static void
install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_terminate;	/* no SA_RESTART: sleeps end early */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_reload;
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* --- the passes ------------------------------------------------------ */

static void
walk_opts(struct relocated *d, struct ids_walk_opts *wo)
{
	static const struct ids_walk_opts init = IDS_WALK_OPTS_INIT;

	*wo = init;
	wo->partition = d->partition;
	wo->owner = d->user;
	wo->relocate.strategy = d->strategy;
	wo->relocate.grace = (int64_t)d->set[S_GRACE].value;
	wo->rate = d->set[S_RATE].value;
	wo->max_pressure = d->set[S_PRESSURE].value;
	wo->pressure_file = getenv("IDS_PRESSURE_FILE");	/* tests */
	wo->settle = d->once;
	wo->parallel = 1;
	wo->jobs = (unsigned)d->set[S_JOBS].value;
	wo->stop = &interrupted;
	wo->event = on_event;
	wo->progress = on_progress;
	wo->progress_ms = d->bar ? 250 : 1000;
	wo->rock = d;
}

static void
summary(struct relocated *d, const struct ids_walk_progress *p)
{
	json_t *j;

	if (d->bar)
		fputs("\r\033[K", stderr);
	if (d->json && d->once) {
		j = progress_json(d, p);
		json_object_set_new(j, "elapsed", json_real(p->elapsed));
		json_object_set_new(j, "stopped", json_boolean(p->stopped));
		json_dumpf(j, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(j);
		return;
	}
	if (d->quiet && !d->daemon)
		return;
	logmsg(d, d->daemon && p->folders_total > 0 ? LOG_NOTICE : LOG_INFO,
	    "pass %u%s: %lu of %lu folders migrated, %lu failed, %lu skipped, "
	    "%llu files linked or copied, %lu directories renamed, %lu pending, %.1f s",
	    d->pass, !p->stopped ? "" : reloading && !terminating ?
	    " (ended early to re-read the configuration)" : " (stopped)",
	    p->folders_done, p->folders_total,
	    p->folders_failed, p->folders_skipped, p->files_done, p->dirs_renamed,
	    p->pending, p->elapsed);
}

/* Sleeps until the next pass is due or a signal came. */
static void
idle(struct relocated *d, const struct ids_walk_progress *last, double secs)
{
	double end = now() + secs;

	d->state = "sleeping";
	write_status(d, last);
	while (!interrupted && now() < end)
		sleep(1);
}

static int
reload(struct relocated *d)
{
	struct ids_config cfg;
	int r;

	reloading = 0;
	if ((r = ids_config_load(&cfg, d->conf)) < 0) {
		logmsg(d, LOG_ERR, "%s: %s; keeping the old configuration", d->conf, ids_errmsg(r));
		return r;
	}
	if (apply_config(d, &cfg, "; keeping the old configuration") < 0) {
		ids_config_release(&cfg);
		return -1;
	}
	ids_config_release(&d->cfg);
	d->cfg = cfg;
	logmsg(d, LOG_NOTICE, "%s re-read", d->conf);
	return 0;
}

/* Runs passes until told to stop (or, with -1, one pass); the exit status. */
static int
run_passes(struct relocated *d)
{
	struct ids_walk_opts wo;
	struct ids_walk_progress res;
	int r = 0;

	memset(&res, 0, sizeof(res));
	while (!terminating) {
		if (reloading)
			reload(d);
		/* A signal from now on stops this pass after the folder in hand. */
		interrupted = terminating || reloading;
		walk_opts(d, &wo);
		d->pass++;
		d->state = "walking";
		if ((r = ids_walk_run(&d->cfg, &wo, &res)) < 0 && !d->daemon)
			warnx("%s", ids_errmsg(r));
		else if (r < 0)
			logmsg(d, LOG_ERR, "pass %u: %s", d->pass, ids_errmsg(r));
		summary(d, &res);
		if (reloading && !terminating)
			continue;
		if (d->once || terminating)
			break;
		idle(d, &res, res.pending ? PENDING_RECHECK : d->set[S_INTERVAL].value);
	}
	if (r < 0 && d->once)
		return IDS_EXIT_ENV;
	return res.folders_failed || res.errors ? IDS_EXIT_FAIL : IDS_EXIT_OK;
}

static int
do_run(struct relocated *d)
{
	struct ids_mboxlist *mbl;
	int status, r;

	take_pidfile(d);
	/* Fail in the foreground if mailboxes.db cannot be used; close it before forking. */
	mbl = tool_open_mboxlist(&d->cfg, 0);
	ids_mboxlist_close(mbl);
	d->started = time(NULL);
	if (!d->once)
		daemonise(d);
	else if ((r = write_pidfile(d)) < 0)
		errx(IDS_EXIT_ENV, "%s: %s", PIDFILE, ids_errmsg(r));
	install_signals();
	if (d->daemon)
		logmsg(d, LOG_NOTICE, "started: strategy %s, grace %.0f s, rate %.0f/s, jobs %.0f",
		    ids_strategy_name(d->strategy), d->set[S_GRACE].value, d->set[S_RATE].value,
		    d->set[S_JOBS].value);
	status = run_passes(d);
	if (d->daemon)
		logmsg(d, LOG_NOTICE, "stopped");
	remove_status(d);
	clear_pidfile(d);
	return status;
}

int
main(int argc, char **argv)
{
	struct relocated d;
	struct ids_walk_opts filter = IDS_WALK_OPTS_INIT;
	char abs[PATH_MAX];
	int status;

	memset(&d, 0, sizeof(d));
	init_settings(&d);
	tool_init(argv);
	parse_args(&d, argc, argv);
	if (d.conf != NULL && realpath(d.conf, abs) != NULL)
		d.conf = abs;	/* the daemon re-reads it from / */
	tool_load_config(&d.cfg, d.conf);
	set_ident(&d);
	/* Opened as the spool's owner, before the daemon leaves for /. */
	if (d.log_arg != NULL && strcmp(d.log_arg, "stderr") == 0) {
		d.logf = stderr;
	} else if (d.log_arg != NULL && (d.logf = fopen(d.log_arg, "ae")) == NULL) {
		warn("--log %s", d.log_arg);
		ids_config_release(&d.cfg);
		return IDS_EXIT_ENV;
	}
	if (d.conf == NULL)
		d.conf = d.cfg.file;
	if (d.partition != NULL && ids_config_partition(&d.cfg, d.partition) == NULL) {
		warnx("-p %s: no such partition in %s", d.partition, d.cfg.file);
		tool_usage(SYNOPSIS);
	}
	if (apply_config(&d, &d.cfg, "") < 0) {
		ids_config_release(&d.cfg);
		return IDS_EXIT_ENV;
	}
	tool_raise_nofile();
	filter.partition = d.partition;
	filter.owner = d.user;
	d.bar = d.once && !d.quiet && !d.json && isatty(STDERR_FILENO);
	if (d.status) {
		status = do_status(&d, &filter);
	} else {
		walk_opts(&d, &filter);
		status = d.dry ? do_plan(&d, &filter) : do_run(&d);
	}
	ids_config_release(&d.cfg);
	if (d.logf != NULL && d.logf != stderr)
		fclose(d.logf);
	return status;
}
