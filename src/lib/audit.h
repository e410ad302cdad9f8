/*
 * audit.h - the integrity audit of a spool: every message where its
 * index says, byte-identical to its GUID; meta files sound; mailboxes.db,
 * cyrus.header and the directories in agreement; optionally a comparison
 * with a second copy of the spool (matched by uniqueid) and the repair
 * of damaged messages from it.  spool-layout.md, "Audit", is the
 * specification of every check and finding.
 *
 *	struct ids_audit_opts o;
 *	struct ids_audit_stats st;
 *	ids_audit_opts_init(&o);
 *	o.jobs = 4;
 *	r = ids_audit_run(mbl, &o, report, rock, &st);
 *
 * Findings are handed to the callback, one at a time, in a fixed order
 * (mailboxes.db order of the folders, then uid order inside a folder),
 * always from the thread that called ids_audit_run(): the callback needs
 * no locking.  The audit itself never prints; a problem with one folder
 * or one file is a finding, never a failure of the run.
 *
 * Hashing runs in o.jobs worker threads (1: everything in the calling
 * thread).  Each message file is read once, sequentially
 * (POSIX_FADV_SEQUENTIAL when it takes more than one 256 KiB read), with
 * its SHA-1 (and MD5 with o.md5) computed in the same pass; pages the
 * audit had to read from disk are dropped from the page cache afterwards
 * (POSIX_FADV_DONTNEED), pages that were cached already are left.
 * Symlinks are never followed: one where a file should be is a finding.
 *
 * The audit opens nothing for writing except lock files and, with
 * o.repair, the message files it heals.  mbl may be opened read-only
 * unless o.repair is set.
 */
#ifndef IDS_AUDIT_H
#define IDS_AUDIT_H

#include <stddef.h>
#include <stdint.h>

struct ids_mboxlist;

enum ids_audit_kind {
	/* one message of a folder */
	IDS_AUDIT_FILE_MISSING,	/* a record that needs a file has none */
	IDS_AUDIT_FILE_SIZE,	/* the file's size differs from the record's */
	IDS_AUDIT_FILE_GUID,	/* the file's SHA-1 differs from the GUID */
	IDS_AUDIT_FILE_UNSAFE,	/* a symlink, directory or device instead */
	IDS_AUDIT_FILE_ERROR,	/* the file could not be read */
	IDS_AUDIT_ORPHAN,	/* a message file no record needs */
	/* the folder's meta files */
	IDS_AUDIT_INDEX,	/* cyrus.index missing or unreadable */
	IDS_AUDIT_RECORD,	/* an index record with a bad CRC */
	IDS_AUDIT_INDEX_COUNTS,	/* uid order, last_uid or exists inconsistent */
	IDS_AUDIT_UIDVALIDITY,	/* index and mailboxes.db disagree */
	IDS_AUDIT_HEADER,	/* cyrus.header missing or unreadable */
	IDS_AUDIT_HEADER_ID,	/* its uniqueid differs from mailboxes.db */
	IDS_AUDIT_HEADER_NAME,	/* its name differs (uniqueid layout only) */
	IDS_AUDIT_HEADER_CRC,	/* index header_file_crc differs from the file */
	IDS_AUDIT_CACHE,	/* cyrus.cache generation differs from the index */
	/* where the folder is */
	IDS_AUDIT_FOLDER_MISSING, /* no directory where the resolver says */
	IDS_AUDIT_LAYOUT_COPY,	/* the other layout's directory holds it too */
	IDS_AUDIT_STRAY,	/* folder files no live mailbox resolves to */
	IDS_AUDIT_DUPID,	/* a live uniqueid held twice (db or disk) */
	IDS_AUDIT_DB,		/* N and I records of mailboxes.db disagree */
	/* comparison with the other copy (expected: here, actual: there) */
	IDS_AUDIT_ONLY_HERE,	/* no live folder with this uniqueid there */
	IDS_AUDIT_ONLY_THERE,	/* no live folder with that uniqueid here */
	IDS_AUDIT_NAME,		/* the same folder has another name there */
	IDS_AUDIT_CMP_UIDVALIDITY,
	IDS_AUDIT_CMP_UIDNEXT,	/* last_uid + 1 */
	IDS_AUDIT_CMP_EXISTS,
	IDS_AUDIT_CMP_UNSEEN,
	IDS_AUDIT_CMP_UID,	/* a uid live on one side only */
	IDS_AUDIT_CMP_FLAGS,	/* system and user flags of a uid */
	IDS_AUDIT_CMP_GUID,	/* the GUID of a uid */
	IDS_AUDIT_CMP_SIZE,	/* the size of a uid */
	IDS_AUDIT_CMP_MD5,	/* the MD5 of the files of a uid (o.md5) */
	IDS_AUDIT_THERE_FILE,	/* the other copy's file of a uid is damaged */
	IDS_AUDIT_MISSING,	/* GUIDs the other copy lacks: MISSING (GUID ...) */
	IDS_AUDIT_NKINDS
};

/* The kind's name as the JSON "kind" and the text output spell it. */
const char *ids_audit_kind_name(enum ids_audit_kind kind);

enum ids_audit_repair {
	IDS_AUDIT_REPAIR_NONE,		/* not a repairable finding, or no repair asked */
	IDS_AUDIT_REPAIR_HEALED,	/* replaced by a verified copy */
	IDS_AUDIT_REPAIR_WOULD,		/* dry run: a verified copy was found */
	IDS_AUDIT_REPAIR_FAILED,	/* could not be healed; repair_detail says why */
};

/*
 * One finding.  Strings are valid during the callback only; any may be
 * NULL when it does not apply.  Paths are absolute.  Names are internal.
 */
struct ids_audit_finding {
	enum ids_audit_kind kind;
	const char *folder;	/* the folder (here), NULL for stray directories */
	const char *uniqueid;
	const char *other_folder; /* comparisons: the folder's name there */
	uint32_t uid;		/* 0: not about one message */
	const char *path;	/* the file or directory concerned */
	const char *expected;
	const char *actual;
	const char *const *guids;	/* IDS_AUDIT_MISSING: hex GUIDs */
	size_t nguids;
	enum ids_audit_repair repair;
	const char *repair_detail;	/* healed/would: source path; failed: why */
};

/* A negative return stops the audit; ids_audit_run() returns it. */
typedef int (*ids_audit_fn)(const struct ids_audit_finding *f, void *rock);

struct ids_audit_opts {
	int jobs;		/* worker threads; <= 0: online CPUs */
	int md5;		/* comparisons: MD5 of both copies' files too */
	const char *subtree;	/* only this folder and those below it (internal) */
	const char *const *names;	/* only these folders (internal), or NULL */
	size_t nnames;
	struct ids_mboxlist *other;	/* compare with (or repair from) this copy */
	int compare;		/* with other: report the differences */
	int repair;		/* with other: heal damaged messages from it */
	int dry_run;		/* repair: verify sources, write nothing */
	int stat_only;		/* check presence, type and size of message files only
				 * (no file is read: file-guid is never found) */
	int lock_timeout_ms;	/* per folder mailbox lock; default IDS_LOCK_TIMEOUT_MS */
};

void ids_audit_opts_init(struct ids_audit_opts *o);

struct ids_audit_stats {
	unsigned long folders;		/* folders audited */
	unsigned long messages;		/* message files opened and checked */
	unsigned long long bytes;	/* bytes hashed */
	unsigned long findings;		/* findings reported, healed ones included */
	unsigned long healed;
	unsigned long unhealed;		/* repairable findings left unhealed */
	unsigned long archived;		/* records on an archive partition: not checked */
};

/*
 * Audits the folders of mbl's spool selected by o (all folders when
 * neither subtree nor names is given; then also the whole spool walk for
 * stray directories and the scan of I records), calling fn for every
 * finding.  Returns the number of findings not healed (0: clean), or a
 * negative code when the audit could not run (mailboxes.db unreadable,
 * a named folder unknown is a finding of kind IDS_AUDIT_DB, not an error),
 * or fn's negative return.  st (may be NULL) is filled either way.
 */
int ids_audit_run(struct ids_mboxlist *mbl, const struct ids_audit_opts *o,
    ids_audit_fn fn, void *rock, struct ids_audit_stats *st);

#endif
