/*
 * Preloaded after libasan by test/sanitize.sh. PostgreSQL is not built with ASan, so its
 * runtime comes in through LD_PRELOAD and initialises lazily, on the first intercepted call.
 * Shared libraries the server links (libgpg-error, gnutls) call bindtextdomain() from their
 * constructors, before that; glibc then mallocs while holding its gettext lock, ASan
 * initialises inside that malloc, calls dlerror() -> dcgettext(), which takes and drops the
 * same lock, and the lock state is corrupted: the next bindtextdomain() (PostgreSQL's own,
 * in main) waits forever. These wrappers make the first allocation happen before glibc takes
 * the lock, then forward to glibc.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

static void asan_init_now(void)
{
	void	   *volatile p = malloc(1);	/* volatile: the pair must not be optimised away */

	free(p);
}

char *
bindtextdomain(const char *domain, const char *dir)
{
	static char *(*real) (const char *, const char *);

	asan_init_now();
	if (!real)
		real = (char *(*) (const char *, const char *)) dlsym(RTLD_NEXT, "bindtextdomain");
	return real(domain, dir);
}

char *
bind_textdomain_codeset(const char *domain, const char *codeset)
{
	static char *(*real) (const char *, const char *);

	asan_init_now();
	if (!real)
		real = (char *(*) (const char *, const char *)) dlsym(RTLD_NEXT, "bind_textdomain_codeset");
	return real(domain, codeset);
}
