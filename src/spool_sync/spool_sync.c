/*
 * spool_sync - Cyrus replication (csync) for an idspool spool, folder by
 * uniqueid, both sides.
 *
 *   --serve           the replica: one session on standard input and
 *                     output (ssh, inetd)
 *   --listen SOCKET   the replica: sessions on a UNIX socket, each in its
 *                     own process, until SIGTERM (sync_client -S SOCKET)
 *   -u USER | -m FOLDER ... [--pull] -- PEER-COMMAND ...
 *                     the client: starts the peer command and speaks
 *                     csync over its standard input and output; pushes
 *                     the named users and folders to it, or pulls them
 *                     from it
 *   -s [--json]       what the client recorded: its findings
 *
 * The protocol and every write are the library's (src/lib/sync/replica.h,
 * src/lib/sync/client.h); this file parses the command line, opens the
 * spool, starts the peer, logs to syslog (and to standard error with -v)
 * and runs the sessions.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "mboxlist.h"
#include "sync/client.h"
#include "journal.h"
#include "sync/replica.h"
#include "tool.h"
#include "rolling.h"
#include "status.h"

#define SYNOPSIS "spool_sync [-C conf] [-q] [-v] --serve | --listen SOCKET\n" \
	"       spool_sync [-C conf] [-q] [-v] [-t seconds] [--pull] [--verify] (-A | -u USER | -m FOLDER) ... " \
	"-- PEER-COMMAND [ARG ...]\n" \
	"       spool_sync [-C conf] [-v] [-t seconds] (-R | --drain) [--channel NAME] " \
	"-- PEER-COMMAND [ARG ...]\n" \
	"       spool_sync [-C conf] --unfence\n" \
	"       spool_sync [-C conf] -s [--json] [--channel NAME]"

static const char help[] =
    "  -C conf            the configuration file (default /etc/idspool.conf)\n"
    "  -q                 log applies to syslog only (the default); the client\n"
    "                     prints no summary line\n"
    "  -v                 also print each apply and refusal on standard error;\n"
    "                     twice, the client prints each line sent and received\n"
    "  --serve            one session on standard input and output\n"
    "  --listen SOCKET    sessions on a UNIX socket, one process each\n"
    "  -u USER            the client: a user to push or pull (repeatable)\n"
    "  -m FOLDER          the client: a folder, by internal name (repeatable)\n"
    "  -A                 the client: every user here (and the peer's, if idspool)\n"
    "  --pull             make the spool equal to the peer (default: the peer to it)\n"
    "  --verify           read every message file on both sides (SHA-1) to find\n"
    "                     damaged ones to repair (default: presence and size)\n"
    "  -t seconds         wait at most this long for the peer (default 1800, 0:\n"
    "                     ever); with -R and --drain, for its reads of ours too\n"
    "  -R                 rolling: push the folders of the change journal, for ever\n"
    "  --channel NAME     the journal's channel (sync_log_channels; default: \"\")\n"
    "  --drain            fence local writers, flush the journal, compare every\n"
    "                     folder; exit 0 only when the peer is equal\n"
    "  --unfence          release the fence of --drain\n"
    "  -s                 print the journal's channels (lag, last success, failing\n"
    "                     folders) and what the client recorded: its findings\n"
    "                     (messages renumbered or copied back, UID conflicts,\n"
    "                     folders kept)\n"
    "  --json             with -s: one JSON object per line\n"
    "  -- PEER-COMMAND    the peer: a csync server on its standard input and output\n";

static int verbose, quiet;
static volatile sig_atomic_t stopping;

static void
log_line(void *rock, int prio, const char *msg)
{
	syslog(prio, "spool_sync: %s", msg);
	if (verbose || (prio <= LOG_ERR && rock != NULL))
		fprintf(stderr, "spool_sync: %s\n", msg);
}

static int
serve(const struct ids_config *cfg, int in, int out, int errors_to_stderr)
{
	struct ids_replica_opts o = { log_line, errors_to_stderr ? (void *)1 : NULL, 0 };
	struct ids_mboxlist *mbl;
	int r;

	/* the replica's writes are journaled only with sync_log_chain */
	ids_journal_set_replica(1);
	mbl = tool_open_mboxlist(cfg, IDS_MBOXLIST_CREATE);

	r = ids_replica_session(mbl, in, out, &o);
	ids_mboxlist_close(mbl);
	if (r < 0) {
		tool_error(r, "session");
		return IDS_EXIT_FAIL;
	}
	return IDS_EXIT_OK;
}

static void
trace_line(void *rock, int dir, const char *line, size_t len)
{
	if (verbose > 1)
		fprintf(stderr, "spool_sync: %c %.*s\n", dir, (int)len, line);
}

/* The peer command as one line, for the findings (its words joined by spaces). */
static const char *
peer_name(char **argv)
{
	static char buf[1024];
	size_t len = 0, i;

	buf[0] = '\0';
	for (i = 0; argv[i] != NULL && len < sizeof(buf) - 1; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", i ? " " : "", argv[i]);
	return buf;
}

static int
client(const struct ids_config *cfg, struct ids_sync_client_opts *o, char **peer)
{
	struct ids_sync_client_report rep;
	struct ids_mboxlist *mbl;
	int in, out, st, r, rc = IDS_EXIT_OK;
	pid_t pid;

	if ((pid = tool_start_peer(peer, o->timeout, &out, &in)) < 0) {
		tool_error(-errno, peer[0]);
		return IDS_EXIT_ENV;
	}
	mbl = tool_open_mboxlist(cfg, IDS_MBOXLIST_CREATE);
	o->peer = peer_name(peer);
	o->log = log_line;
	o->rock = (void *)1;
	o->trace = trace_line;
	r = ids_sync_client_session(mbl, out, in, o, &rep);
	close(in);
	close(out);
	/* a session that failed may have left the peer waiting: it is ours to end */
	if (r < 0)
		kill(pid, SIGTERM);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	ids_mboxlist_close(mbl);
	if (r == -EAGAIN || r == -EWOULDBLOCK || r == -ETIMEDOUT) {
		/* SO_SNDTIMEO (the peer stopped reading: tool_start_peer), or no answer */
		fprintf(stderr, "spool_sync: %s: the peer %s nothing for %u s: timed out\n",
		    peer[0], r == -ETIMEDOUT ? "sent" : "took", o->timeout);
		rc = IDS_EXIT_FAIL;
	} else if (r < 0) {
		tool_error(r, "session");
		rc = IDS_EXIT_FAIL;
	} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "spool_sync: %s: exited with status %d\n", peer[0],
		    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		rc = IDS_EXIT_FAIL;
	}
	if (rep.failed > 0)
		rc = IDS_EXIT_FAIL;
	if (!quiet)
		printf("%s: %zu folder(s) compared, %zu applied, %zu renamed, %zu deleted, "
		    "%zu kept, %zu file(s), %zu user item(s), %zu failed\n",
		    o->pull ? "pull" : "push", rep.folders, rep.applied, rep.renamed,
		    rep.deleted, rep.kept, rep.files, rep.meta, rep.failed);
	if (!quiet && rep.findings > 0)
		printf("%s: %zu folder(s) merged, %zu finding(s) (spool_sync -s lists them)\n",
		    o->pull ? "pull" : "push", rep.merged, rep.findings);
	if (!quiet && rep.repaired > 0)
		printf("%s: %zu missing or damaged file(s) repaired\n", o->pull ? "pull" : "push",
		    rep.repaired);
	return rc;
}

static void
on_term(int sig)
{
	stopping = 1;
}

static int
listen_on(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* One process per connection, until SIGTERM; children are waited for. */
static int
listen_loop(const struct ids_config *cfg, const char *path)
{
	struct sigaction sa;
	int lfd, c;

	if ((lfd = listen_on(path)) < 0) {
		tool_error(-errno, path);
		return IDS_EXIT_ENV;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;	/* no SA_RESTART: accept() returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	syslog(LOG_INFO, "spool_sync: listening on %s", path);
	while (!stopping) {
		pid_t pid;

		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if ((c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				syslog(LOG_ERR, "spool_sync: accept: %s", strerror(errno));
			continue;
		}
		if ((pid = fork()) == 0) {
			close(lfd);
			signal(SIGTERM, SIG_DFL);
			signal(SIGINT, SIG_DFL);
			_exit(serve(cfg, c, c, 1));
		}
		if (pid < 0)
			syslog(LOG_ERR, "spool_sync: fork: %s", strerror(errno));
		close(c);
	}
	close(lfd);
	unlink(path);
	/* sessions in progress finish what they answered; the rest ends */
	while (wait(NULL) > 0 || errno == EINTR)
		;
	syslog(LOG_INFO, "spool_sync: stopped");
	return IDS_EXIT_OK;
}

/* Appends arg to a NULL-terminated vector. */
static void
push_arg(const char ***v, size_t *n, const char *arg)
{
	const char **nv = realloc(*v, (*n + 2) * sizeof(*nv));

	if (nv == NULL) {
		tool_error(-ENOMEM, "arguments");
		exit(IDS_EXIT_ENV);
	}
	nv[(*n)++] = arg;
	nv[*n] = NULL;
	*v = nv;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "serve", no_argument, NULL, 'S' },
		{ "listen", required_argument, NULL, 'L' },
		{ "pull", no_argument, NULL, 'P' },
		{ "channel", required_argument, NULL, 'c' },
		{ "drain", no_argument, NULL, 'D' },
		{ "unfence", no_argument, NULL, 'U' },
		{ "json", no_argument, NULL, 'J' },
		{ "verify", no_argument, NULL, 'Y' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ids_sync_client_opts o;
	struct ids_config cfg;
	const char *conf = NULL, *sock = NULL, *channel = NULL;
	const char **users = NULL, **folders = NULL;
	unsigned long long secs;
	int c, stdio = 0, rc, rolling = 0, drain = 0, unfence = 0, status = 0, json = 0;

	memset(&o, 0, sizeof(o));
	o.timeout = 1800;	/* Cyrus's sync_timeout */
	tool_init(argv);
	while ((c = getopt_long(argc, argv, "+AC:qsvu:m:t:R", longopts, NULL)) != -1) {
		switch (c) {
		case 'C': conf = optarg; break;
		case 'q': verbose = 0; quiet = 1; break;
		case 'v': verbose++; break;
		case 'S': stdio = 1; break;
		case 'L': sock = optarg; break;
		case 'P': o.pull = 1; break;
		case 's': status = 1; break;
		case 'J': json = 1; break;
		case 'Y': o.verify = 1; break;
		case 'A': o.all = 1; break;
		case 'u': push_arg(&users, &o.nusers, optarg); break;
		case 'm': push_arg(&folders, &o.nfolders, optarg); break;
		case 'R': rolling = 1; break;
		case 'c': channel = optarg; break;
		case 'D': drain = 1; break;
		case 'U': unfence = 1; break;
		case 't':
			if (tool_uint("-t", optarg, 0, 86400, &secs) < 0)
				tool_usage(SYNOPSIS);
			o.timeout = (unsigned)secs;
			break;
		case 'h': tool_help_options(SYNOPSIS, help);
		case 'V': tool_version();
		default: tool_usage(SYNOPSIS);
		}
	}
	o.users = users;
	o.folders = folders;
	if (rolling + drain + unfence + status > 1 ||
	    ((rolling || drain || unfence || status) &&
	    (stdio || sock != NULL || o.pull || o.nusers || o.nfolders || o.all)) ||
	    ((rolling || drain) != (optind < argc) && (rolling || drain || unfence || status)) ||
	    (json && !status) || (channel != NULL && !rolling && !drain && !status))
		tool_usage(SYNOPSIS);
	if (rolling || drain || unfence || status) {
		tool_load_config(&cfg, conf);
		openlog("spool_sync", LOG_PID, LOG_MAIL);
		signal(SIGPIPE, SIG_IGN);
		rolling_verbose = verbose;
		if (channel == NULL)
			channel = "";
		if (rolling || drain)
			ids_replica_clean_staging(&cfg);
		if (rolling)
			rc = rolling_run(&cfg, channel, &o, argv + optind);
		else if (drain)
			rc = rolling_drain(&cfg, channel, &o, argv + optind);
		else if (unfence)
			rc = rolling_unfence(&cfg);
		else {
			/* the channels (with a journal), then the findings */
			rc = rolling_status(&cfg, *channel ? channel : NULL, json);
			fflush(stdout);
			if ((c = status_print(&cfg, json, stdout)) != IDS_EXIT_OK)
				rc = c;
		}
		ids_config_release(&cfg);
		free(users);
		free(folders);
		return rc;
	}
	if (optind == argc) {
		/* the replica */
		if (stdio == (sock != NULL) || o.pull || o.nusers || o.nfolders || o.all)
			tool_usage(SYNOPSIS);
	} else if (stdio || sock != NULL || (o.nusers == 0 && o.nfolders == 0 && !o.all)) {
		tool_usage(SYNOPSIS);
	}
	tool_load_config(&cfg, conf);
	openlog("spool_sync", LOG_PID, LOG_MAIL);
	signal(SIGPIPE, SIG_IGN);
	ids_replica_clean_staging(&cfg);
	if (optind < argc)
		rc = client(&cfg, &o, argv + optind);
	else
		rc = stdio ? serve(&cfg, 0, 1, 1) : listen_loop(&cfg, sock);
	ids_config_release(&cfg);
	free(users);
	free(folders);
	return rc;
}
