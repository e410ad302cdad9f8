/*
 * idspool.h - the public interface of libidspool, for mail servers and
 * delivery agents that want the path resolver and the lock protocol
 * rather than a re-implementation of them.
 *
 *	#include <idspool.h>	(cc $(pkg-config --cflags --libs idspool))
 *
 * A writer follows the protocol of lock.h: take the folder's mailbox
 * lock, then resolve its directory (mailbox.h: ids_mailbox_open does
 * both), then write.  The error convention is error.h's: 0 or a
 * non-negative value on success, a negative code on failure,
 * ids_errmsg(code) for the reason.  Nothing here prints or exits.
 */
#ifndef IDSPOOL_H
#define IDSPOOL_H

#include "error.h"
#include "buf.h"
#include "config.h"
#include "mboxname.h"
#include "mbentry.h"
#include "layout.h"
#include "lock.h"
#include "mboxlist.h"
#include "mailbox.h"
#include "header.h"
#include "index.h"
#include "guid.h"
#include "intent.h"
#include "rename.h"
#include "recover.h"
#include "relocate.h"
#include "failure.h"
#include "audit.h"
#include "reconstruct.h"
#include "dump.h"

#endif
