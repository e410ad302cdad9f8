/*
 * helper.h - the parts of ids-helper, the test program that exposes
 * library internals to the reliability tests (t/t9*.t).
 */
#ifndef IDS_TEST_HELPER_H
#define IDS_TEST_HELPER_H

struct ids_config;
struct ids_mboxlist;

/*
 * Checks the invariants of the spool of cfg (check.c) and prints the
 * report as JSON (quiet: only the violations, one per line).  Returns
 * 0 when every invariant holds, 1 otherwise.
 */
int helper_check(const struct ids_config *cfg, struct ids_mboxlist *mbl, int quiet);

#endif
