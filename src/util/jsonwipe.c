#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>

#include <jansson.h>
#include <sodium.h>

#include "util/jsonwipe.h"

/* Each block starts with its size, so free knows how much to wipe. */
#define HEADER (alignof(max_align_t))

static void *wipe_malloc(size_t n)
{
	unsigned char *p;

	if (n > SIZE_MAX - HEADER || !(p = malloc(n + HEADER)))
		return NULL;
	*(size_t *)(void *)p = n;
	return p + HEADER;
}

static void wipe_free(void *ptr)
{
	unsigned char *p;

	if (!ptr)
		return;
	p = (unsigned char *)ptr - HEADER;
	sodium_memzero(ptr, *(size_t *)(void *)p);
	free(p);
}

void jsonwipe_install(void)
{
	json_set_alloc_funcs(wipe_malloc, wipe_free);
}

void json_free_string(char *s)
{
	json_malloc_t m;
	json_free_t f;

	json_get_alloc_funcs(&m, &f);
	f(s);
}
