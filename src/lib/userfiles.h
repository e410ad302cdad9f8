/*
 * userfiles.h - a user's own files, which are named by the user, not
 * by a folder: seen state, subscriptions, conversations, counters and
 * the rest of Cyrus's per-user databases, the sieve scripts and the
 * quota root.  They sit where Cyrus's name-based code puts them
 * (mboxname_conf_getpath_legacy, user_sieve_path_byname, quotalegacy's
 * hash_quota; spool-layout.md, "A user's own files"):
 *
 *   <configdirectory>[/domain/<D>/<domain>]/user/<L>/<local>.<suffix>
 *	suffix: seen, sub, counters, conversations, dav, mboxkey, xapianactive
 *   <sievedir>[/domain/<D>/<domain>]/<L>/<local>	(a directory)
 *   <quota dir>[/domain/<D>/<domain>]/quota/<Q>/user.<local^>
 *
 * D and L are Cyrus's dir_hash_c of the domain and of the localpart,
 * hashed whatever hashimapspool says; Q is that of the quota root's
 * part after "user." (the localpart with '^' for a dot).  An owner
 * rename of a user moves each that exists (ids_rename, under its
 * intent), and recovery moves them back or forward with the intent.
 */
#ifndef IDS_USERFILES_H
#define IDS_USERFILES_H

#include <limits.h>

struct ids_config;
struct ids_mbname;
struct ids_header;
struct ids_mbentry;

#define IDS_USERFILES_MAX 9

struct ids_userfile {
	const char *kind;	/* "seen", ..., "sieve", "quota" */
	const char *root;	/* absolute directory the path lies below */
	char path[PATH_MAX];	/* relative to root */
};

/*
 * The files of the user who owns mb (any of the user's names), into
 * out; *n is set to their number.  A shared owner has none (*n = 0).
 * The sieve directory is left out when sieveusehomedir is on, the
 * quota file unless quota_db is quotalegacy (Cyrus's default).
 * Returns 0 or IDS_ETOOLONG.
 */
int ids_userfiles(const struct ids_config *cfg, const struct ids_mbname *mb,
    struct ids_userfile out[IDS_USERFILES_MAX], size_t *n);

/*
 * Before an owner rename from from to to: none of to's files may exist
 * while from's does (IDS_ECONFLICT naming the file), and none may be a
 * symlink (IDS_EUNSAFE).
 */
int ids_userfiles_check(const struct ids_config *cfg, const struct ids_mbname *from,
    const struct ids_mbname *to);

/*
 * Moves each of from's files that exists to to's name, when to's does
 * not exist (renameat2 RENAME_NOREPLACE, failpoint "rename.userfile";
 * the parents of the new name created and both parents fsynced).
 * Called with the names swapped to move them back.  Idempotent: a file
 * already moved is skipped, so recovery may call it again.  With
 * IDS_USERFILES_STRICT (the rename itself, after ids_userfiles_check),
 * a file at both names is IDS_ECONFLICT instead: one appeared since.
 */
#define IDS_USERFILES_STRICT	0x1
int ids_userfiles_move(const struct ids_config *cfg, const struct ids_mbname *from,
    const struct ids_mbname *to, int flags);

/*
 * A folder whose newest former name belongs to another owner (it came
 * with an owner rename) and whose header's quota root held that former
 * name: the quota root follows, keeping its place in the name
 * ("user.a" for "user.a.Sent" becomes "user.b" for "user.b.Sent").
 * Returns 0, or -ENOMEM.
 */
int ids_userfiles_follow_quotaroot(struct ids_header *h, const struct ids_mbentry *e);

#endif
