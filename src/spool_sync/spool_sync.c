/*
 * spool_sync - the replica side of Cyrus replication (csync): a Cyrus
 * 3.6 sync_client pushes into an idspool spool, folder by uniqueid.
 *
 *   --serve           one session on standard input and output (ssh, inetd)
 *   --listen SOCKET   sessions on a UNIX socket, each in its own process,
 *                     until SIGTERM (sync_client -S SOCKET)
 *
 * The protocol and every write are the library's (src/lib/sync/replica.h);
 * this file parses the command line, opens the spool, logs to syslog
 * (and to standard error with -v) and runs the sessions.
 */
#include <errno.h>
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
#include "sync/replica.h"
#include "tool.h"

#define SYNOPSIS "spool_sync [-C conf] [-q] [-v] --serve | --listen SOCKET"

static const char help[] =
    "  -C conf            the configuration file (default /etc/idspool.conf)\n"
    "  -q                 log applies to syslog only (the default)\n"
    "  -v                 also print each apply and refusal on standard error\n"
    "  --serve            one session on standard input and output\n"
    "  --listen SOCKET    sessions on a UNIX socket, one process each\n";

static int verbose;
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
	struct ids_mboxlist *mbl = tool_open_mboxlist(cfg, IDS_MBOXLIST_CREATE);
	int r;

	r = ids_replica_session(mbl, in, out, &o);
	ids_mboxlist_close(mbl);
	if (r < 0) {
		tool_error(r, "session");
		return IDS_EXIT_FAIL;
	}
	return IDS_EXIT_OK;
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

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "serve", no_argument, NULL, 'S' },
		{ "listen", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ids_config cfg;
	const char *conf = NULL, *sock = NULL;
	int c, stdio = 0, rc;

	tool_init(argv);
	while ((c = getopt_long(argc, argv, "C:qv", longopts, NULL)) != -1) {
		switch (c) {
		case 'C': conf = optarg; break;
		case 'q': verbose = 0; break;
		case 'v': verbose = 1; break;
		case 'S': stdio = 1; break;
		case 'L': sock = optarg; break;
		case 'h': tool_help_options(SYNOPSIS, help);
		case 'V': tool_version();
		default: tool_usage(SYNOPSIS);
		}
	}
	if (optind != argc || stdio == (sock != NULL))
		tool_usage(SYNOPSIS);
	tool_load_config(&cfg, conf);
	openlog("spool_sync", LOG_PID, LOG_MAIL);
	signal(SIGPIPE, SIG_IGN);
	ids_replica_clean_staging(&cfg);
	rc = stdio ? serve(&cfg, 0, 1, 1) : listen_loop(&cfg, sock);
	ids_config_release(&cfg);
	return rc;
}
