/*
 * unit.h - helpers shared by the C unit tests (cmocka, TAP output).
 *
 * Include after <cmocka.h>.  Each test binary runs exactly one group
 * with unit_run(), so prove sees one plan per binary.
 */
#ifndef IDS_UNIT_H
#define IDS_UNIT_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

/* Removes a scratch tree made by the test (paths under /tmp only). */
static inline void
unit_rmtree(const char *dir)
{
	char cmd[4200];

	if (snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir) < (int)sizeof(cmd) &&
	    dir[0] == '/' && dir[1] == 't')
		(void)system(cmd);
}

#define unit_run(tests) \
	(cmocka_set_message_output(CM_OUTPUT_TAP), \
	 cmocka_run_group_tests((tests), NULL, NULL))

#endif
