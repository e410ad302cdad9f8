/*
 * recover.h - settling what dead processes left half done.
 *
 * Every multi-step operation leaves an intent record (intent.h) while
 * it runs and holds the mailbox lock of the intent's uniqueid.  An
 * intent whose lock is free therefore belongs to a process that died:
 * ids_recover() takes the lock (without waiting: a busy lock means the
 * owner is alive), reads the intent again and finishes or rolls back
 * the operation.  Tools call it when they start; the walker calls it
 * before and during every pass.
 */
#ifndef IDS_RECOVER_H
#define IDS_RECOVER_H

struct ids_mboxlist;
struct ids_relocate_opts;
struct ids_relocate_stats;

struct ids_recover_report {
	unsigned settled;	/* finished or rolled back */
	unsigned pending;	/* migrations waiting for their grace period */
	unsigned busy;		/* owner alive: left alone */
	unsigned failed;	/* could not be settled (see the return value) */
	unsigned set_aside;	/* of those, set aside for good ('Z' records) */
};

/*
 * Settles every intent it can.  opts gives the grace period for
 * migrations (NULL: none).  Returns 0, or the first error met (the
 * others are still tried), its detail naming the intent's key and
 * folder; rep (may be NULL) counts the outcomes.  An intent that fails
 * for good (a name too long for the file system, a malformed record)
 * is set aside (ids_intent_set_aside) and so reported only once.
 */
int ids_recover(struct ids_mboxlist *mbl, const struct ids_relocate_opts *opts,
    struct ids_relocate_stats *stats, struct ids_recover_report *rep);

#endif
