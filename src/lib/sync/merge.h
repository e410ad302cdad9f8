/*
 * merge.h - the records of one folder that both sides of a csync
 * session changed while apart, merged by UID so that no message is
 * lost (Cyrus's sync_support.c mailbox_update_loop, both directions):
 *
 *   - the same UID with the same GUID: an expunge on either side wins
 *     (never undone); otherwise the record of the higher MODSEQ wins,
 *     the source's on a tie;
 *   - the same UID with two GUIDs (split brain): both messages are
 *     kept, each appended under a new UID after the larger last_uid of
 *     both sides (the lower GUID first), and the UID is expunged on
 *     both sides;
 *   - a record only one side has, above the other's last_uid: kept at
 *     its UID on both sides (from the target: a copy-back);
 *   - a live record only one side has, at or below the other's
 *     last_uid: the other side expunged and cleaned it when its MODSEQ
 *     is not above that side's deletedmodseq (known of the local side
 *     only): then expunged on both; otherwise it is renumbered as in a
 *     split brain, since the other side never saw it;
 *   - a message that would be renumbered while the merged list holds
 *     its GUID live under another UID (both sides hold it there, or the
 *     other side does and it comes over: an earlier merge cut short) is
 *     expunged instead of copied a second time.
 *
 * Both sides are then made the merged list by a full APPLY MAILBOX of
 * recs[x], followed, on a side whose record of a split-brain UID is
 * live, by an APPLY EXPUNGE of that UID (expunge[x]): the copies are
 * durable before the old record goes.
 */
#ifndef IDS_SYNC_MERGE_H
#define IDS_SYNC_MERGE_H

#include <stddef.h>
#include <stdint.h>

struct ids_dlist;

#define IDS_MERGE_LOCAL	0
#define IDS_MERGE_PEER	1

/* What a merge did that a plain copy would not have: a finding. */
struct ids_sync_merge_event {
	const char *kind;	/* "conflict", "renumbered", "copied-back" */
	int side;		/* whose record (IDS_MERGE_LOCAL, IDS_MERGE_PEER) */
	uint32_t uid, newuid;	/* newuid: 0 when it keeps its uid */
	char guid[41];
	char guid2[41];		/* conflict: the other side's GUID */
};

/* A record side x lacks: its file is on either side under uid[side] (0: not there). */
struct ids_sync_merge_want {
	char guid[41];
	uint32_t uid[2];
	uint64_t size;
	int expunged;		/* optional: the record may come without its file */
};

struct ids_sync_merge {
	struct ids_dlist *recs[2];	/* the RECORD list applied to each side */
	uint32_t crc[2], crc_annot[2];	/* their CRCs */
	uint32_t final_crc, final_crc_annot;	/* of the merged list */
	uint32_t last_uid, uidvalidity;
	uint64_t highestmodseq;
	uint32_t *expunge[2];		/* uids each side expunges after its apply */
	size_t nexpunge[2];
	struct ids_sync_merge_want *want[2];	/* files each side needs */
	size_t nwant[2];
	struct ids_sync_merge_event *ev;
	size_t nev;
};

/*
 * Merges the RECORD lists of the MAILBOX kvlists state[0] (local) and
 * state[1] (peer); src is the side whose folder wins a tie
 * (IDS_MERGE_PEER when pulling).  deletedmodseq: the local index's.
 * 0, -ENOMEM, or IDS_ECORRUPT for a malformed record.
 */
int ids_sync_merge(const struct ids_dlist *const state[2], int src, uint64_t deletedmodseq,
    struct ids_sync_merge *m);
void ids_sync_merge_release(struct ids_sync_merge *m);

/*
 * The APPLY MAILBOX kvlist for side x: the keys of src_state (the
 * source's MAILBOX line), MBOXNAME and PARTITION of x_state, the
 * merged LAST_UID, HIGHESTMODSEQ, UIDVALIDITY, x's CRCs and RECORD.
 * With final, the state x will report once its expunges are done
 * (RECORD left out): what the sides are compared with afterwards.
 */
int ids_sync_merge_kvlist(const struct ids_sync_merge *m, const struct ids_dlist *src_state,
    const struct ids_dlist *x_state, int x, int final, struct ids_dlist **out);

#endif
