/*
 * status.h - spool_sync -s: what the client has recorded, printed.
 */
#ifndef SPOOL_SYNC_STATUS_H
#define SPOOL_SYNC_STATUS_H

#include <stdio.h>

struct ids_config;

/*
 * Prints the findings of cfg (spool-layout.md "Findings"): one line
 * each in plain text, or with json one JSON object a line as stored.
 * Returns an exit status: IDS_EXIT_OK, or IDS_EXIT_FAIL when the file
 * cannot be read or holds a line that is not a finding (said on
 * standard error; the other lines are printed).
 */
int status_print(const struct ids_config *cfg, int json, FILE *out);

#endif
