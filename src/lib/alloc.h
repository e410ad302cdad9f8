/*
 * alloc.h - growing an array, as git's ALLOC_GROW, but failing softly.
 *
 *	struct thing *v = NULL;
 *	size_t n = 0, alloc = 0;
 *	if (IDS_ALLOC_GROW(v, n + 1, alloc) < 0)
 *		return -ENOMEM;
 *	v[n++] = t;
 *
 * IDS_ALLOC_GROW(x, nr, alloc) makes room for at least nr elements of
 * *x: when alloc is short it reallocates x to twice alloc (16 at first,
 * nr if more) and sets alloc.  It evaluates to 0, or -ENOMEM with x and
 * alloc untouched (x still to be freed by the caller).  x and alloc are
 * evaluated more than once.
 */
#ifndef IDS_ALLOC_H
#define IDS_ALLOC_H

#include <errno.h>
#include <stdlib.h>

#define IDS_ALLOC_GROW(x, nr, alloc) __extension__ ({				\
	int ids_grow_r_ = 0;							\
	size_t ids_grow_nr_ = (nr);						\
	if (ids_grow_nr_ > (size_t)(alloc)) {					\
		size_t ids_grow_n_ = (alloc) ? 2 * (size_t)(alloc) : 16;	\
		void *ids_grow_p_;						\
		if (ids_grow_n_ < ids_grow_nr_)					\
			ids_grow_n_ = ids_grow_nr_;				\
		ids_grow_p_ = ids_grow_n_ > (size_t)-1 / sizeof(*(x)) ? NULL :	\
		    realloc((x), ids_grow_n_ * sizeof(*(x)));			\
		if (ids_grow_p_ == NULL)					\
			ids_grow_r_ = -ENOMEM;					\
		else {								\
			(x) = ids_grow_p_;					\
			(alloc) = ids_grow_n_;					\
		}								\
	}									\
	ids_grow_r_;								\
})

#endif
