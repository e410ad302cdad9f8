/*
 * common.c - what the fuzz targets share (fuzz.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

void
fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz: property broken: %s\n", what);
	abort();
}

const struct ids_config *
fuzz_config(void)
{
	static const char text[] =
	    "configdirectory: /nonexistent/conf\n"
	    "partition-default: /nonexistent/spool\n"
	    "partition-other: /nonexistent/other\n"
	    "metapartition-default: /nonexistent/meta\n"
	    "metapartition_files: header index\n"
	    "hashimapspool: yes\n"
	    "virtdomains: userid\n"
	    "defaultdomain: example.org\n";
	static struct ids_config cfg;
	static int ready;

	if (!ready) {
		if (ids_config_parse(&cfg, text, strlen(text), "fuzz.conf") < 0)
			fuzz_fail("the fuzz configuration does not parse");
		ready = 1;
	}
	return &cfg;
}
