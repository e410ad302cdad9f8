/*
 * tool.c - shared command-line support (see tool.h).
 */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "error.h"
#include "mboxname.h"
#include "mboxlist.h"
#include "recover.h"
#include "tool.h"

static int failed;
static int quiet;

void
tool_set_quiet(int on)
{
	quiet = on;
}

void
tool_init(char **argv)
{
	const char *slash = strrchr(argv[0], '/');

	if (slash != NULL)
		argv[0] = (char *)slash + 1;
	program_invocation_short_name = argv[0];
	program_invocation_name = argv[0];
}

const char *
tool_reason(const char *object, int code)
{
	const char *msg = ids_errmsg(code);
	size_t n = strlen(object);

	if (n > 0 && strncmp(msg, object, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
		return msg + n + 2;
	return msg;
}

int
tool_error(int code, const char *object)
{
	if (!quiet)
		warnx("%s: %s", object, tool_reason(object, code));
	failed = code == IDS_EFENCED && failed != 1 ? 2 : 1;
	return code;
}

int
tool_status(void)
{
	return failed == 2 ? IDS_EXIT_FENCED : failed ? IDS_EXIT_FAIL : IDS_EXIT_OK;
}

void
tool_usage(const char *synopsis)
{
	fprintf(stderr, "usage: %s\n", synopsis);
	exit(IDS_EXIT_USAGE);
}

void
tool_help(const char *synopsis)
{
	printf("usage: %s\n", synopsis);
	exit(IDS_EXIT_OK);
}

void
tool_help_options(const char *synopsis, const char *options)
{
	printf("usage: %s\n\n%s", synopsis, options);
	exit(IDS_EXIT_OK);
}

void
tool_version(void)
{
	printf("%s (idspool) %s\n", program_invocation_short_name, IDS_VERSION);
	exit(IDS_EXIT_OK);
}

int
tool_uint(const char *opt, const char *arg, unsigned long long min,
    unsigned long long max, unsigned long long *out)
{
	int r;

	if ((r = ids_parse_uint(arg, min, max, out)) < 0) {
		warnx("%s: %s", opt, ids_errmsg(r));
		return -1;
	}
	return 0;
}

int
tool_real(const char *opt, const char *arg, double min, double max, double *out)
{
	int r;

	if ((r = ids_parse_real(arg, min, max, out)) < 0) {
		warnx("%s: %s", opt, ids_errmsg(r));
		return -1;
	}
	return 0;
}

/*
 * The owner of dir, or of its nearest existing parent when it does not
 * exist yet (a spool about to be created): into *st.
 */
static int
owner_of(const char *dir, struct stat *st, char *where, size_t size)
{
	char *slash;

	snprintf(where, size, "%s", dir);
	for (;;) {
		if (stat(where, st) == 0)
			return 0;
		if (errno != ENOENT || (slash = strrchr(where, '/')) == NULL || slash == where)
			break;
		*slash = '\0';
	}
	if (errno == ENOENT && stat("/", st) == 0) {
		snprintf(where, size, "/");
		return 0;
	}
	return -1;
}

void
tool_become_owner(const struct ids_config *cfg)
{
	const char *user = ids_config_get(cfg, "cyrus_user");
	const char *group = ids_config_get(cfg, "cyrus_group");
	char where[PATH_MAX], why[PATH_MAX + 64];
	const struct passwd *pw = NULL;
	const struct group *gr;
	struct stat st;
	uid_t uid;
	gid_t gid;

	if (user != NULL && user[0] == '\0')
		user = NULL;
	if (group != NULL && group[0] == '\0')
		group = NULL;
	if (user != NULL) {
		errno = 0;
		if ((pw = getpwnam(user)) == NULL) {
			warnx("%s: cyrus_user: '%s': no such user", cfg->file, user);
			exit(IDS_EXIT_ENV);
		}
		uid = pw->pw_uid;
		gid = pw->pw_gid;
		snprintf(why, sizeof(why), "cyrus_user %s", user);
	} else {
		if (owner_of(cfg->configdirectory, &st, where, sizeof(where)) < 0) {
			warn("%s", cfg->configdirectory);
			exit(IDS_EXIT_ENV);
		}
		uid = st.st_uid;
		gid = st.st_gid;
		pw = getpwuid(uid);
		snprintf(why, sizeof(why), "the owner of %s", where);
	}
	if (group != NULL) {
		if ((gr = getgrnam(group)) == NULL) {
			warnx("%s: cyrus_group: '%s': no such group", cfg->file, group);
			exit(IDS_EXIT_ENV);
		}
		gid = gr->gr_gid;
	}
	if (uid == geteuid() && uid == getuid() && gid == getegid() && gid == getgid())
		return;
	if (geteuid() != 0) {
		/* Not root: only a named cyrus_user is a promise to keep. */
		if (user == NULL)
			return;
		warnx("must run as %s (uid %u) or as root, not as uid %u", user,
		    (unsigned)uid, (unsigned)geteuid());
		exit(IDS_EXIT_ENV);
	}
	/* Cyrus's become_cyrus(): groups, then group, then user. */
	if ((pw != NULL ? initgroups(pw->pw_name, gid) : setgroups(1, &gid)) < 0 ||
	    setgid(gid) < 0 || setuid(uid) < 0) {
		warn("cannot become uid %u gid %u (%s)", (unsigned)uid, (unsigned)gid, why);
		exit(IDS_EXIT_ENV);
	}
	if (uid != 0 && setuid(0) == 0) {
		warnx("cannot become uid %u gid %u (%s): root could be regained",
		    (unsigned)uid, (unsigned)gid, why);
		exit(IDS_EXIT_ENV);
	}
}

void
tool_check_configdir(const struct ids_config *cfg)
{
	char path[PATH_MAX];
	int r;

	snprintf(path, sizeof(path), "%s/mailboxes.db", cfg->configdirectory);
	if ((r = ids_mboxlist_check_file(path)) < 0) {
		warnx("%s: %s", path, tool_reason(path, r));
		exit(IDS_EXIT_ENV);
	}
}

void
tool_load_config(struct ids_config *cfg, const char *file)
{
	const char *msg;
	size_t n;
	int r;

	if (file == NULL)
		file = IDS_DEFAULT_CONFIG;
	if ((r = ids_config_load(cfg, file)) == 0) {
		tool_become_owner(cfg);
		tool_check_configdir(cfg);
		return;
	}
	/* The library's details already start with the file name. */
	msg = ids_errmsg(r);
	n = strlen(file);
	if (strncmp(msg, file, n) == 0 && msg[n] == ':')
		warnx("%s", msg);
	else
		warnx("%s: %s", file, msg);
	exit(IDS_EXIT_ENV);
}

const char *
tool_printable(const char *s, char *buf, size_t size)
{
	return ids_printable(s, buf, size);
}

int
tool_parse_name(struct ids_mbname *mb, const char *arg, int internal,
    const struct ids_config *cfg)
{
	char shown[256];
	int r;

	if (internal)
		r = ids_mbname_parse_internal(mb, arg, 0);
	else
		r = ids_mbname_parse_external(mb, arg, cfg, 0);
	if (r < 0)
		return tool_error(r, tool_printable(arg, shown, sizeof(shown)));
	ids_mbname_normalize(mb, cfg);
	return 0;
}

int
tool_format_name(const struct ids_mbname *mb, int internal,
    const struct ids_config *cfg, char *buf, size_t size)
{
	char name[IDS_MBNAME_MAX + 2], shown[256];
	int r;

	if (internal)
		r = ids_mbname_internal(mb, buf, size);
	else
		r = ids_mbname_external(mb, cfg, buf, size);
	if (r >= 0)
		return r;
	/* A successful call leaves the recorded detail of r alone. */
	if (ids_mbname_internal(mb, name, sizeof(name)) < 0)
		strcpy(name, "?");
	return tool_error(r, tool_printable(name, shown, sizeof(shown)));
}

int
tool_try_open_mboxlist(const struct ids_config *cfg, int flags,
    struct ids_mboxlist **mblp)
{
	char path[PATH_MAX];
	int r;

	if ((r = ids_mboxlist_open(cfg, flags, mblp)) < 0) {
		snprintf(path, sizeof(path), "%s/mailboxes.db", cfg->configdirectory);
		warnx("%s: %s", path, tool_reason(path, r));
		return IDS_EXIT_ENV;
	}
	/* Like every writer, settle what a dead process left half done. */
	if (!(flags & IDS_MBOXLIST_RDONLY) && (r = ids_recover(*mblp, NULL, NULL, NULL)) < 0)
		warnx("recovery: %s", ids_errmsg(r));
	return IDS_EXIT_OK;
}

struct ids_mboxlist *
tool_open_mboxlist(const struct ids_config *cfg, int flags)
{
	struct ids_mboxlist *mbl;

	if (tool_try_open_mboxlist(cfg, flags, &mbl) != IDS_EXIT_OK)
		exit(IDS_EXIT_ENV);
	return mbl;
}

int
tool_exit_status(int code)
{
	switch (code) {
	case IDS_EFENCED:
		return IDS_EXIT_FENCED;
	case IDS_EDB:
	case IDS_ECONFIG:
	case IDS_EFORMAT:
	case IDS_ELOCKED:
	case IDS_EPARTITION:
		return IDS_EXIT_ENV;
	}
	return ids_is_errno(code) ? IDS_EXIT_ENV : IDS_EXIT_FAIL;
}

/* The next code point of UTF-8 s (moved on), or -1 for a bad sequence. */
static long
utf8_next(const unsigned char **s)
{
	const unsigned char *p = *s;
	long c;
	int n, i;

	if (p[0] < 0x80)
		n = 0, c = p[0];
	else if ((p[0] & 0xe0) == 0xc0)
		n = 1, c = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		n = 2, c = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		n = 3, c = p[0] & 0x07;
	else
		return -1;
	for (i = 1; i <= n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return -1;
		c = c << 6 | (p[i] & 0x3f);
	}
	if ((n == 1 && c < 0x80) || (n == 2 && c < 0x800) || (n == 3 && c < 0x10000) ||
	    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return -1;
	*s = p + n + 1;
	return c;
}

int
tool_utf8_to_mutf7(const char *in, char *out, size_t size)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
	const unsigned char *p = (const unsigned char *)in;
	unsigned long bits = 0;
	size_t o = 0;
	int nbits = 0, open = 0;
	long c;

#define PUT(ch) do { if (o + 1 >= size) return -1; out[o++] = (ch); } while (0)
	while (*p != '\0') {
		if ((c = utf8_next(&p)) < 0)
			return -1;
		if (c >= 0x20 && c < 0x7f) {
			if (open) {
				if (nbits > 0)
					PUT(b64[(bits << (6 - nbits)) & 0x3f]);
				PUT('-');
				open = 0, nbits = 0, bits = 0;
			}
			PUT((char)c);
			if (c == '&')
				PUT('-');
			continue;
		}
		if (!open) {
			PUT('&');
			open = 1;
		}
		if (c >= 0x10000) {
			unsigned long hi = 0xd800 + ((unsigned long)(c - 0x10000) >> 10);
			unsigned long lo = 0xdc00 + ((unsigned long)(c - 0x10000) & 0x3ff);

			bits = bits << 32 | hi << 16 | lo;
			nbits += 32;
		} else {
			bits = bits << 16 | (unsigned long)c;
			nbits += 16;
		}
		while (nbits >= 6) {
			nbits -= 6;
			PUT(b64[(bits >> nbits) & 0x3f]);
		}
		bits &= (1ul << nbits) - 1;
	}
	if (open) {
		if (nbits > 0)
			PUT(b64[(bits << (6 - nbits)) & 0x3f]);
		PUT('-');
	}
#undef PUT
	out[o] = '\0';
	return (int)o;
}

int
tool_parse_user(struct ids_mbname *mb, const char *userid, const struct ids_config *cfg)
{
	char name[IDS_MBNAME_MAX + 2], shown[256];
	const char *at = cfg->virtdomains != IDS_VIRTDOMAINS_OFF ? strrchr(userid, '@') : NULL;
	size_t o = 0, i, n = at ? (size_t)(at - userid) : strlen(userid);
	int r = 0;

	if (at != NULL) {
		if ((size_t)snprintf(name, sizeof(name), "%s!", at + 1) >= sizeof(name))
			r = IDS_ETOOLONG;
		else
			o = strlen(name);
	}
	if (r == 0 && o + 5 + n + 1 > sizeof(name))
		r = IDS_ETOOLONG;
	if (r == 0) {
		memcpy(name + o, "user.", 5);
		o += 5;
		for (i = 0; i < n; i++)
			name[o++] = userid[i] == '.' ? '^' : userid[i];
		name[o] = '\0';
		if (n == 0 || memchr(userid, '/', n) != NULL || (at != NULL && at[1] == '\0'))
			r = ids_error(IDS_EBADNAME, "not a userid");
		else
			r = ids_mbname_parse_internal(mb, name, 0);
	}
	if (r == IDS_ETOOLONG)
		r = ids_error(IDS_ETOOLONG, "userid too long");
	if (r == 0 && !ids_mbname_is_inbox(mb))
		r = ids_error(IDS_EBADNAME, "not a userid");
	if (r < 0)
		return tool_error(r, tool_printable(userid, shown, sizeof(shown)));
	ids_mbname_normalize(mb, cfg);
	return 0;
}

/*
 * The peer command: its standard input on a socket pair, so that our
 * writes can time out (SO_SNDTIMEO; a pipe's cannot), its standard
 * output on a pipe, which ends when every process holding it has gone
 * (a socket would stay open as long as any of the peer's children kept
 * its standard input).  Close on exec here; SIGPIPE and SIGTERM back to
 * their defaults in the child.
 */
pid_t
tool_start_peer(char **argv, unsigned send_timeout, int *peer_out, int *peer_in)
{
	struct timeval tv;
	int to[2], from[2], e;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, to) < 0)
		return -1;
	if (pipe2(from, O_CLOEXEC) < 0) {
		e = errno;
		close(to[0]);
		close(to[1]);
		errno = e;
		return -1;
	}
	if (send_timeout > 0) {
		tv.tv_sec = (time_t)send_timeout;
		tv.tv_usec = 0;
		if (setsockopt(to[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
			pid = -1;
			goto out;
		}
	}
	if ((pid = fork()) == 0) {
		if (dup2(to[1], 0) < 0 || dup2(from[1], 1) < 0)
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGTERM, SIG_DFL);	/* not the parent's handler until the exec */
		execvp(argv[0], argv);
		fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, argv[0],
		    strerror(errno));
		_exit(127);
	}
out:
	e = errno;
	close(to[1]);
	close(from[1]);
	if (pid < 0) {
		close(to[0]);
		close(from[0]);
		errno = e;
		return -1;
	}
	*peer_in = to[0];
	*peer_out = from[0];
	return pid;
}

void
tool_raise_nofile(void)
{
	struct rlimit rl;
	rlim_t want = 65536;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}
