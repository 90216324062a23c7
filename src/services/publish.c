/* publish.c -- statistics records that other processes read: `neap stats
 * PID` while a program runs, and the summary `neap run` prints after it.
 *
 *   /tmp/neap-<uid>/            mode 0700, the user's own (checked, never a
 *   |                           symbolic link), made on first use
 *   +-- <pid>                   one text record per publishing process
 *   +-- <pid>.tmp               the next record, renamed over <pid> whole
 *
 *   record ("key value" lines; a reader skips keys it does not know):
 *     neap-stats 1             format version, always the first line
 *     version 0.1.0            neap's version
 *     pid 1234 / state running|exited / time_ms <wall clock>
 *     start_ms <wall clock> / interval_ms <publish interval> / command <cmdline>
 *     <every field of neap_stats_t> / rss / peak_rss / vsize
 *     mesh <NEAP_MESH: 1 meshing, 0 not>
 *     class <n> <size> <pools> <blocks used> <blocks free> <pools made>
 *
 * Who writes:
 *   NEAP_PUBLISH=<ms> > 0 -> the background thread (background.c; all
 *       signals blocked; it never allocates) rewrites the record every <ms>
 *       through _neap_publish_tick, from the library constructor on.  A
 *       forked child starts its own thread and record.
 *   process exit (library destructor) -> the record is rewritten with
 *       "state exited" when NEAP_RUN_PID is this process's pid (`neap run`
 *       reads it, then removes it); any other process removes its record.
 *
 *   Python on pymalloc under `neap run` (a process of the run, NEAP_RUN_PID
 *       set, whose interpreter's object allocator is pymalloc at exit:
 *       PYTHONMALLOC set otherwise, or ignored with -E or -I): one line
 *       "<pid> <allocator> <command>" appended to <run pid>.python, which
 *       `neap run` reads for its summary and removes.
 *   a traced process of `neap run` other than its program (NEAP_TRACE
 *       set, NEAP_RUN_PID another pid), once its trace file is open (the
 *       library constructor, neap.c): one line "<pid> <command>" appended
 *       to <run pid>.traces; `neap run` names FILE.<pid> of each in its
 *       summary and removes the note.  Written at start, so that a process
 *       killed later is named too.
 *
 * Invariants: neap_pub_lock is held while a record is written and while the
 * state changes, so the exit record is the last one written; it is taken
 * before _neap_lock (the statistics walk), in the fork handlers too.
 * A process killed by a signal leaves its last "running" record behind;
 * `neap stats` recognises a dead pid and removes it.
 */
#include "services/services.h"


enum { NEAP_PUB_OFF, NEAP_PUB_RUNNING, NEAP_PUB_STOPPED };

static pthread_mutex_t neap_pub_lock = PTHREAD_MUTEX_INITIALIZER;
static int neap_pub_state = NEAP_PUB_OFF;
static uint64_t neap_pub_start_ms;
static char neap_pub_path[96];
static char neap_pub_tmp[104];

static void neap_kv_u(neap_buf_t *b, const char *key, unsigned long long v) {
    _neap_buf_str(b, key);
    _neap_buf_str(b, " ");
    _neap_buf_u(b, v, 0);
    _neap_buf_str(b, "\n");
}

/* The command line from /proc/self/cmdline, arguments joined by spaces,
 * control characters dropped, cut at 200 characters. */
static void neap_pub_command(neap_buf_t *b) {
    char cmd[256];
    int n = _neap_os_read_file("/proc/self/cmdline", cmd, sizeof cmd);
    if (n <= 0) {
        _neap_buf_str(b, "?");
        return;
    }
    if (n > 200) n = 200;
    while (n > 0 && cmd[n - 1] == 0) n--;
    for (int i = 0; i < n; i++) {
        if (cmd[i] == 0) cmd[i] = ' ';
        else if ((unsigned char)cmd[i] < 32 || cmd[i] == 127) cmd[i] = '?';
    }
    cmd[n] = 0;
    _neap_buf_str(b, cmd);
}

/* Formats this process's record into buf.  Returns its length, or 0 when it
 * did not fit. */
static size_t neap_pub_format(char *buf, size_t cap, const char *state) {
    neap_stats_t st;
    _neap_stats_collect(&st);
    neap_process_memory_t pm;
    if (neap_process_memory(&pm) != 0) memset(&pm, 0, sizeof pm);
    neap_buf_t b = {buf, 0, cap};
    buf[0] = 0;
    _neap_buf_str(&b, "neap-stats 1\nversion " NEAP_VERSION "\n");
    neap_kv_u(&b, "pid", (unsigned long long)_neap_os_getpid());
    _neap_buf_str(&b, "state ");
    _neap_buf_str(&b, state);
    _neap_buf_str(&b, "\n");
    neap_kv_u(&b, "time_ms", _neap_os_realtime_ms());
    neap_kv_u(&b, "start_ms", neap_pub_start_ms);
    neap_kv_u(&b, "interval_ms", (unsigned long long)neap_opt(NEAP_OPTION_PUBLISH));
    _neap_buf_str(&b, "command ");
    neap_pub_command(&b);
    _neap_buf_str(&b, "\n");
    neap_kv_u(&b, "arenas_allocated", st.arenas_allocated);
    neap_kv_u(&b, "arenas_freed", st.arenas_freed);
    neap_kv_u(&b, "arenas_current", st.arenas_current);
    neap_kv_u(&b, "arenas_highwater", st.arenas_highwater);
    neap_kv_u(&b, "arenas_orphaned", st.arenas_orphaned);
    neap_kv_u(&b, "pools_current", st.pools_current);
    neap_kv_u(&b, "pages_used", st.pages_used);
    neap_kv_u(&b, "pages_dirty", st.pages_dirty);
    neap_kv_u(&b, "bytes_live", st.bytes_live);
    neap_kv_u(&b, "bytes_in_pools", st.bytes_in_pools);
    neap_kv_u(&b, "bytes_huge", st.bytes_huge);
    neap_kv_u(&b, "bytes_huge_cached", st.bytes_huge_cached);
    neap_kv_u(&b, "bytes_mapped", st.bytes_mapped);
    neap_kv_u(&b, "bytes_purged", st.bytes_purged);
    neap_kv_u(&b, "bytes_unmapped", st.bytes_unmapped);
    neap_kv_u(&b, "huge_current", st.huge_current);
    neap_kv_u(&b, "large_current", st.large_current);
    neap_kv_u(&b, "heaps_current", st.heaps_current);
    neap_kv_u(&b, "mesh", (unsigned long long)neap_opt(NEAP_OPTION_MESH));
    neap_kv_u(&b, "mesh_pages", st.mesh_pages);
    neap_kv_u(&b, "meshes", st.meshes);
    neap_kv_u(&b, "unmeshes", st.unmeshes);
    neap_kv_u(&b, "mesh_ns", st.mesh_ns);
    neap_kv_u(&b, "rss", pm.rss);
    neap_kv_u(&b, "peak_rss", pm.peak_rss);
    neap_kv_u(&b, "vsize", pm.vsize);
    for (size_t c = 0; c < NEAP_CLASS_MAX; c++) {
        const neap_class_stats_t *cs = &st.classes[c];
        if (cs->pools == 0 && cs->pools_made == 0) continue;
        const size_t fields[6] = {c + 1, cs->block_size, cs->pools, cs->blocks_used, cs->blocks_free,
                                  cs->pools_made};
        _neap_buf_str(&b, "class");
        for (size_t f = 0; f < 6; f++) {
            _neap_buf_str(&b, " ");
            _neap_buf_u(&b, fields[f], 0);
        }
        _neap_buf_str(&b, "\n");
    }
    _neap_buf_str(&b, "end\n");
    /* a record cut short would lose its "end" line: refuse it instead */
    if (b.len + 1 >= cap) return 0;
    return b.len;
}

/* Writes the record; the caller holds neap_pub_lock. */
static void neap_pub_write(const char *state) {
    char text[8192];
    size_t len = neap_pub_format(text, sizeof text, state);
    if (len > 0) _neap_os_replace_file(neap_pub_path, neap_pub_tmp, text, len);
}

/* Writes a "running" record when asked (write: the background thread found
 * NEAP_PUBLISH > 0 and its interval up) and the thread is the current one.
 * false once the process has stopped publishing (exit) or the generation is
 * not the current one: the thread then ends. */
bool _neap_publish_tick(unsigned long generation, bool write) {
    pthread_mutex_lock(&neap_pub_lock);
    bool mine = neap_pub_state == NEAP_PUB_RUNNING && generation == _neap_background_generation();
    if (mine && write) neap_pub_write("running");
    pthread_mutex_unlock(&neap_pub_lock);
    return mine;
}

/* Sets neap_pub_path and neap_pub_tmp for this process; false if the
 * directory is not usable. */
static bool neap_pub_paths(void) {
    char dir[64];
    if (_neap_os_stats_dir(dir, sizeof dir) != 0) return false;
    neap_buf_t b = {neap_pub_path, 0, sizeof neap_pub_path};
    _neap_buf_str(&b, dir);
    _neap_buf_str(&b, "/");
    _neap_buf_u(&b, (unsigned long long)_neap_os_getpid(), 0);
    neap_buf_t t = {neap_pub_tmp, 0, sizeof neap_pub_tmp};
    _neap_buf_str(&t, neap_pub_path);
    _neap_buf_str(&t, ".tmp");
    return true;
}

/* Sets the paths, writes a first record and starts the background thread;
 * the caller holds neap_pub_lock. */
static void neap_pub_start_locked(void) {
    bool publish = neap_opt(NEAP_OPTION_PUBLISH) > 0;
    if (publish && !neap_pub_paths()) {
        _neap_warning("statistics are not published", "/tmp/neap-<uid> cannot be made, or is not the user's own 0700 directory");
        neap_option_set(NEAP_OPTION_PUBLISH, 0);
        publish = false;
        if (!neap_opt(NEAP_OPTION_BACKGROUND) && !neap_mesh_on()) return;
    }
    neap_pub_start_ms = _neap_os_realtime_ms();
    neap_pub_state = NEAP_PUB_RUNNING;
    if (publish) neap_pub_write("running");
    _neap_background_start();
}

void _neap_publish_start(void) {
    /* meshing's work on idle heaps is the background thread's */
    if (neap_opt(NEAP_OPTION_PUBLISH) <= 0 && !neap_opt(NEAP_OPTION_BACKGROUND) && !neap_mesh_on()) return;
    pthread_mutex_lock(&neap_pub_lock);
    if (neap_pub_state == NEAP_PUB_OFF) neap_pub_start_locked();
    pthread_mutex_unlock(&neap_pub_lock);
}

/* "<pid> <command>\n" appended to the note <run pid>.<suffix> of the
 * statistics directory (see the drawing). */
static void neap_pub_note(long run_pid, const char *suffix, const char *what) {
    char dir[64], path[96], line[320];
    if (_neap_os_stats_dir(dir, sizeof dir) != 0) return;
    neap_buf_t p = {path, 0, sizeof path};
    _neap_buf_str(&p, dir);
    _neap_buf_str(&p, "/");
    _neap_buf_u(&p, (unsigned long long)run_pid, 0);
    _neap_buf_str(&p, suffix);
    neap_buf_t b = {line, 0, sizeof line - 1};
    _neap_buf_u(&b, (unsigned long long)_neap_os_getpid(), 0);
    _neap_buf_str(&b, " ");
    if (what != NULL) {
        _neap_buf_str(&b, what);
        _neap_buf_str(&b, " ");
    }
    neap_pub_command(&b);
    if (b.len > sizeof line - 2) b.len = sizeof line - 2;
    line[b.len++] = '\n';
    _neap_os_append_file(path, line, b.len);
}

/* A Python interpreter of this process whose objects are pymalloc's, not
 * neap's: noted for `neap run`'s summary (see the drawing). */
static void neap_pub_python_note(long run_pid) {
    void *sym = _neap_os_symbol("_PyMem_GetCurrentAllocatorName");
    if (sym == NULL) return;   /* no Python here, or one that does not say */
    const char *(*current)(void);
    memcpy(&current, &sym, sizeof sym);
    const char *name = current();
    if (name == NULL || strncmp(name, "pymalloc", 8) != 0) return;
    neap_pub_note(run_pid, ".python", strlen(name) < 32 ? name : "pymalloc");
}

void _neap_publish_trace_note(void) {
    long run_pid = neap_opt(NEAP_OPTION_RUN_PID);
    if (run_pid > 0 && run_pid != _neap_os_getpid()) neap_pub_note(run_pid, ".traces", NULL);
}

void _neap_publish_exit(void) {
    long run_pid = neap_opt(NEAP_OPTION_RUN_PID);
    if (run_pid > 0) neap_pub_python_note(run_pid);
    bool summary = run_pid > 0 && run_pid == _neap_os_getpid();
    pthread_mutex_lock(&neap_pub_lock);
    int state = neap_pub_state;
    neap_pub_state = NEAP_PUB_STOPPED;
    /* not publishing, but `neap run` waits for this record */
    if (summary && neap_pub_path[0] == 0 && !neap_pub_paths()) summary = false;
    if (summary) neap_pub_write("exited");
    else if (state == NEAP_PUB_RUNNING && neap_pub_path[0]) _neap_os_unlink(neap_pub_path);
    pthread_mutex_unlock(&neap_pub_lock);
}

void _neap_publish_fork_prepare(void) {
    pthread_mutex_lock(&neap_pub_lock);
}

void _neap_publish_fork_parent(void) {
    pthread_mutex_unlock(&neap_pub_lock);
}

void _neap_publish_fork_child(void) {
    pthread_mutex_unlock(&neap_pub_lock);   /* taken by the forking thread in prepare */
    neap_pub_path[0] = 0;   /* the parent's record is the parent's */
    /* the parent's thread did not come along; the child publishes under its
     * own pid, and leaves the parent's record alone */
    if (neap_pub_state == NEAP_PUB_RUNNING) {
        neap_pub_state = NEAP_PUB_OFF;
        pthread_mutex_lock(&neap_pub_lock);
        neap_pub_start_locked();
        pthread_mutex_unlock(&neap_pub_lock);
    }
}
