/*
 * failpoint.h - named fault-injection points.
 *
 * Every mutating system call and every mailboxes.db commit in the
 * library is preceded by a named point:
 *
 *	if ((r = IDS_FAILPOINT("migrate.link")) < 0)
 *		return r;
 *
 * Points do nothing unless the environment asks for a fault:
 *
 *   IDS_FAILPOINT_CRASH=K[:PREFIX]
 *	the K-th point hit in this process (counting only points whose
 *	name starts with PREFIX, when given) kills the process with
 *	SIGKILL, as a power cut or an OOM kill would.
 *   IDS_FAILPOINT=NAME:ERR[:N][,NAME:ERR[:N]...]
 *	point NAME returns -ERR (ERR is a name such as ENOSPC, EIO, EXDEV,
 *	EMLINK, EPERM, EINTR or a number), on every hit or only on the N-th.
 *	Rules of one point each count every hit of it (NAME:EIO:2,NAME:EIO:5
 *	fails its 2nd and 5th hits); the first rule that fires answers.
 *   IDS_FAILPOINT_LOG=FILE
 *	appends the name of every point hit to FILE, one per line.
 *
 * Names are "module.step".  `make failpoints` lists every point in the
 * sources.  Building with -DIDS_NO_FAILPOINTS compiles them out.
 */
#ifndef IDS_FAILPOINT_H
#define IDS_FAILPOINT_H

#ifdef IDS_NO_FAILPOINTS
#define IDS_FAILPOINT(name) 0
#else
#define IDS_FAILPOINT(name) ids_failpoint(name)
#endif

/* Returns 0, or the negative errno injected for name; may not return. */
int ids_failpoint(const char *name);

/* Forgets the hit counts and re-reads the environment (for tests). */
void ids_failpoint_reset(void);

/* Parses an errno name ("ENOSPC") or number; returns it, or 0 if unknown. */
int ids_errno_parse(const char *s);

#endif
