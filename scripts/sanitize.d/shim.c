/* shim.c: preloaded after gcc's ASan and UBSan runtimes into lua5.4 by
 * scripts/sanitize.d/bin/lua5.4 (make test-asan).
 *   - It removes LD_PRELOAD from the environment once the runtimes are in, so
 *     the processes a spec starts (sh, python, ...) run without them; a
 *     lua5.4 among them goes through the wrapper again.
 *   - It points UBSan's reports to $DDB_SANITIZE_LOGS/ubsan.<pid>: libasan
 *     and libubsan each carry their own copy of the sanitizer common code,
 *     and libubsan's own call to set its report path binds to libasan's
 *     (preloaded first), so UBSAN_OPTIONS=log_path alone is lost and UBSan
 *     would report to stderr, which the specs capture for the processes they
 *     start. The runtime's own function, looked up in libubsan, sets it.
 *   - dlclose keeps the library loaded: lua_close unloads ddb/core.so, and a
 *     leak reported at exit would otherwise show no function names. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int dlclose(void *handle);

int dlclose(void *handle) {
    (void)handle;
    return 0;
}

__attribute__((constructor)) static void ddb_sanitize_shim(void) {
    const char *logs = getenv("DDB_SANITIZE_LOGS");
    void *ubsan = dlopen("libubsan.so.1", RTLD_NOLOAD | RTLD_LAZY);
    if (logs && ubsan) {
        static char path[4096];
        void (*set_path)(const char *);
        *(void **)&set_path = dlsym(ubsan, "__sanitizer_set_report_path");
        if (set_path && snprintf(path, sizeof path, "%s/ubsan", logs) < (int)sizeof path) set_path(path);
    }
    unsetenv("LD_PRELOAD");
}
