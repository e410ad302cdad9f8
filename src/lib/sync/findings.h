/*
 * findings.h - what a csync client changed beyond a plain copy, kept
 * for the operator: $configdirectory/sync/findings, one JSON object a
 * line (spool-layout.md "Findings"), appended and fsynced before the
 * client goes on.  spool_sync -s lists them.
 *
 *	struct ids_sync_finding f = { .peer = "ssh b spool_sync --serve",
 *	    .kind = "renumbered", .uniqueid = u, .name = n, .side = "peer",
 *	    .uid = 7, .newuid = 12, .guid = g };
 *	r = ids_sync_findings_append(cfg, &f, 1);
 */
#ifndef IDS_SYNC_FINDINGS_H
#define IDS_SYNC_FINDINGS_H

#include <stddef.h>
#include <stdint.h>

struct ids_config;

#define IDS_SYNC_FINDINGS_DIR	"sync"
#define IDS_SYNC_FINDINGS_FILE	"findings"

struct ids_sync_finding {
	int64_t time;		/* 0: now */
	const char *peer;	/* the peer command, as run */
	const char *direction;	/* "push" or "pull" */
	const char *kind;	/* conflict, renumbered, copied-back, recovered-folder */
	const char *side;	/* whose message or folder: "local" or "peer" */
	const char *uniqueid, *name;
	const char *newname;	/* recovered-folder: its name where it was copied */
	uint32_t uid, newuid;	/* 0: none */
	const char *guid, *guid2;	/* conflict: both GUIDs */
};

/*
 * Appends n findings as n lines with one write, then fsyncs the file
 * (and the directory when the file is new); a line left without its
 * newline by a crash is closed first.  Failpoint sync.findings_write.
 */
int ids_sync_findings_append(const struct ids_config *cfg, const struct ids_sync_finding *f,
    size_t n);

/* The path of the findings file of cfg into buf. */
int ids_sync_findings_path(const struct ids_config *cfg, char *buf, size_t len);

#endif
