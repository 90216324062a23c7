/* main.c -- minipy's demonstration and self-check.
 *
 *   minipy [--dot FILE]
 *
 * Six steps, each printing what it does and checking what it expects:
 *
 *   1. interned strings: one object per value, wherever the value comes from
 *   2. nested lists and dicts; acyclic garbage goes by reference counting
 *   3. the list type's free list
 *   4. reference cycles (a list holding itself, two dicts holding each
 *      other, a tree with parent links), a weak reference whose callback
 *      fires when the collector frees the tree, gc.get_referrers, and the
 *      back-reference graph in DOT (written to FILE with --dot)
 *   5. gc.freeze: a collection leaves the frozen startup objects alone,
 *      even those that became garbage, until gc.unfreeze
 *   6. every object the program made is gone
 *
 * Automatic collection is off (neap_gc_disable), so the counts are exact.
 * Exit status: 0 when every check passed and nothing is left, else 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minipy.h"

/* --- checks and helpers ---------------------------------------------------- */

static int mp_checks;   /* checks made */
static int mp_failures; /* checks that failed */

#define CHECK(cond) check((cond) != 0, #cond, __LINE__)

static void check(int ok, const char *what, int line) {
    mp_checks++;
    if (!ok) {
        mp_failures++;
        printf("  ** check failed (main.c:%d): %s\n", line, what);
    }
}

/* An example's answer to running out of memory: say so and stop. */
static void *must(void *o, const char *what) {
    if (o == NULL) {
        fprintf(stderr, "minipy: %s: %s\n", what, strerror(errno));
        exit(1);
    }
    return o;
}

static void must_ok(int r, const char *what) {
    if (r < 0) {
        fprintf(stderr, "minipy: %s: %s\n", what, strerror(errno));
        exit(1);
    }
}

/* New references, or the program stops. */
static void *str(const char *s) {
    return must(neap_intern_cstr(s), "neap_intern_cstr");
}

static void *num(long v) {
    return must(mp_int_new(v), "mp_int_new");
}

static void *new_list(void) {
    return must(mp_list_new(), "mp_list_new");
}

static void *new_dict(void) {
    return must(mp_dict_new(), "mp_dict_new");
}

/* list.append(item) and dict[key] = value, taking over the caller's
 * reference to item / value (so `push(l, num(3))` leaks nothing). */
static void push(void *list, void *item) {
    must_ok(mp_list_append(list, item), "mp_list_append");
    neap_decref(item);
}

static void put(void *dict, const char *key, void *value) {
    must_ok(mp_dict_set_cstr(dict, key, value), "mp_dict_set");
    neap_decref(value);
}

static void show(const char *label, const void *o) {
    printf("  %s = ", label);
    mp_print(stdout, o);
    putchar('\n');
}

/* neap_gc_count_by_type on one line. */
static void show_counts(const char *label) {
    neap_typecount_t tc[16];
    size_t n = neap_gc_count_by_type(tc, 16);

    printf("  %-28s", label);
    for (size_t i = 0; i < n && i < 16; i++)
        printf(" %s=%zu", tc[i].name, tc[i].count);
    printf(n == 0 ? " (nothing)\n" : "\n");
}

/* Objects alive of the tracked types: the ones a collection looks at. */
static size_t tracked_live(void) {
    return neap_type_live(&mp_list_type) + neap_type_live(&mp_dict_type) +
           neap_type_live(&neap_weakref_type);
}

/* --- 1. interned strings --------------------------------------------------- */

static void demo_interning(void) {
    size_t interned_before = neap_intern_count();
    char bytes[4];
    void *a, *b, *plain, *c, *d;

    printf("1. Interned strings\n");
    a = str("name");
    memcpy(bytes, "na", 2); /* the same value, built at run time */
    memcpy(bytes + 2, "me", 2);
    b = must(neap_intern(bytes, 4), "neap_intern");
    printf("  intern(\"name\") from a literal and from bytes built at run time: %s\n",
           a == b ? "the same object" : "two objects");
    CHECK(a == b);

    plain = must(neap_str_new("name", 4), "neap_str_new");
    c = must(neap_intern_str(plain), "neap_intern_str");
    printf("  str_new(\"name\") is %s; sys.intern of it gives %s\n",
           plain == a ? "the interned object" : "a separate object",
           c == a ? "the interned one back" : "another object");
    CHECK(plain != a && !neap_str_is_interned(plain) && neap_str_is_interned(a));
    CHECK(c == a);
    printf("  references to the interned 'name': %ld (a, b, c)\n", (long)neap_refcnt(a));
    CHECK(neap_refcnt(a) == 3);

    /* An equal str that is not the interned object still finds the entry
     * (same hash, same bytes). */
    d = new_dict();
    put(d, "name", str("ada"));
    CHECK(mp_dict_get(d, plain) == mp_dict_get(d, a) && mp_dict_get(d, a) != NULL);

    neap_decref(d);
    neap_decref(plain);
    neap_decref(c);
    neap_decref(b);
    neap_decref(a);
    printf("  interned strings alive after dropping them all: %zu (the table keeps none alive)\n",
           neap_intern_count());
    CHECK(neap_intern_count() == interned_before);
}

/* --- 2. nested containers -------------------------------------------------- */

static void *make_person(const char *name, long born, const char *tag1, const char *tag2) {
    void *p = new_dict();
    void *tags = new_list();

    put(p, "name", str(name));
    put(p, "born", num(born));
    push(tags, str(tag1));
    push(tags, str(tag2));
    put(p, "tags", tags);
    return p;
}

static void demo_list_ops(void) {
    void *nums = new_list();
    void *seven = num(7), *seven2 = num(7), *big = num(1000), *big2 = num(1000);

    for (long i = 0; i < 10; i++)
        push(nums, num(i * i));
    must_ok(mp_list_set(nums, 3, big), "mp_list_set");
    show("squares, [3] = 1000", nums);
    CHECK(mp_list_len(nums) == 10 && mp_list_get(nums, 3) == big);
    CHECK(mp_int_value(mp_list_get(nums, 9)) == 81);
    errno = 0;
    CHECK(mp_list_get(nums, 10) == NULL && errno == EINVAL);
    CHECK(mp_list_set(nums, 10, big) == -1 && errno == EINVAL);
    printf("  int(7) twice: %s; int(1000) twice: %s\n",
           seven == seven2 ? "one cached object" : "two objects",
           big == big2 ? "one object" : "two objects");
    CHECK(seven == seven2 && big != big2);
    neap_decref(seven);
    neap_decref(seven2);
    neap_decref(big);
    neap_decref(big2);
    neap_decref(nums);
}

static void demo_dict_ops(void) {
    enum { N = 1000 };
    void *d = new_dict();
    char key[16];
    int ok = 1;

    for (long i = 0; i < N; i++) {
        snprintf(key, sizeof key, "k%ld", i);
        put(d, key, num(i));
    }
    CHECK(mp_dict_len(d) == N);
    for (long i = 0; i < N; i += 2) {
        void *k;
        snprintf(key, sizeof key, "k%ld", i);
        k = str(key);
        must_ok(mp_dict_del(d, k), "mp_dict_del");
        errno = 0;
        ok &= mp_dict_del(d, k) == -1 && errno == ENOENT;
        neap_decref(k);
    }
    CHECK(mp_dict_len(d) == N / 2);
    for (long i = 0; i < N; i++) {
        void *v;
        snprintf(key, sizeof key, "k%ld", i);
        v = mp_dict_get_cstr(d, key);
        ok &= i % 2 == 0 ? v == NULL : v != NULL && mp_int_value(v) == i;
    }
    for (long i = 0; i < N; i++) {  /* re-set all: evens reuse tombstones */
        snprintf(key, sizeof key, "k%ld", i);
        put(d, key, num(-i));
    }
    for (long i = 0; i < N; i++) {
        void *v;
        snprintf(key, sizeof key, "k%ld", i);
        v = mp_dict_get_cstr(d, key);
        ok &= v != NULL && mp_int_value(v) == -i;
    }
    CHECK(ok);
    CHECK(mp_dict_len(d) == N);
    printf("  dict: %d keys set, half deleted, all looked up and set again: len %zu, %zu slots\n",
           N, mp_dict_len(d), ((mp_dict_t *)d)->mask + 1);
    neap_decref(d);
}

static void demo_containers(void) {
    size_t interned_before = neap_intern_count();
    void *team, *members, *ada, *alan, *name;

    printf("\n2. Nested lists and dicts\n");
    ada = make_person("ada", 1815, "math", "engines");
    alan = make_person("alan", 1912, "math", "machines");
    team = new_dict();
    members = new_list();
    push(members, ada);
    push(members, alan);
    put(team, "members", members);
    put(team, "name", str("pioneers"));
    put(team, "size", num(2));
    show("team", team);

    /* ada and alan are borrowed from here on: the list holds them. */
    printf("  'math' in ada's and alan's tags: %s\n",
           mp_list_get(mp_dict_get_cstr(ada, "tags"), 0) ==
                   mp_list_get(mp_dict_get_cstr(alan, "tags"), 0)
               ? "one interned object"
               : "two objects");
    CHECK(mp_list_get(mp_dict_get_cstr(ada, "tags"), 0) ==
          mp_list_get(mp_dict_get_cstr(alan, "tags"), 0));
    name = str("name");
    printf("  the key 'name' of all three dicts is one object: %ld references (3 dicts + ours)\n",
           (long)neap_refcnt(name));
    CHECK(neap_refcnt(name) == 4);
    neap_decref(name);

    demo_list_ops();
    demo_dict_ops();

    neap_decref(team);
    printf("  all dropped: list=%zu dict=%zu alive (no cycles: reference counting freed them)\n",
           neap_type_live(&mp_list_type), neap_type_live(&mp_dict_type));
    CHECK(neap_type_live(&mp_list_type) == 0 && neap_type_live(&mp_dict_type) == 0);
    CHECK(neap_intern_count() == interned_before);
}

/* --- 3. the free list ------------------------------------------------------ */

static void demo_freelist(void) {
    void *lists[20];
    void *l, *l2;
    uintptr_t freed;
    size_t kept;

    printf("\n3. The list free list (freelist_max %zu)\n", mp_list_type.freelist_max);
    neap_type_freelist_clear(&mp_list_type);
    l = new_list();
    push(l, num(1));
    freed = (uintptr_t)l;
    neap_decref(l);
    l2 = new_list();
    printf("  a list freed, a new one made: %s memory, %zu items\n",
           (uintptr_t)l2 == freed ? "the same" : "different", mp_list_len(l2));
    CHECK((uintptr_t)l2 == freed && mp_list_len(l2) == 0 && ((mp_list_t *)l2)->items == NULL);
    neap_decref(l2);

    for (size_t i = 0; i < 20; i++)
        lists[i] = new_list();
    for (size_t i = 0; i < 20; i++)
        neap_decref(lists[i]);
    kept = neap_type_freelist_clear(&mp_list_type);
    printf("  20 lists freed: %zu kept for reuse, the rest went back to neap_free\n", kept);
    CHECK(kept == mp_list_type.freelist_max);
}

/* --- 4. cycles, weak references, referrers --------------------------------- */

static int mp_root_gone; /* calls of on_root_gone */

/* The weak reference's callback: data is the label given at creation. */
static void on_root_gone(void *wr, void *data) {
    void *o = neap_weakref_get(wr);

    mp_root_gone++;
    printf("  weakref callback: %s is gone (the weak reference now gives %s)\n",
           neap_str_data(data), o == NULL ? "NULL" : "an object!");
    neap_xdecref(o);
}

/* gc.callbacks: one line after each collection. */
static void on_collection(const char *phase, const neap_gc_info_t *info, void *arg) {
    (void)arg;
    if (strcmp(phase, "stop") == 0)
        printf("  gc callback: generation %d done, %zu unreachable, %zu uncollectable\n",
               info->generation, info->collected, info->uncollectable);
}

/* A tree node {'name': name, 'children': [], 'parent': parent}, appended to
 * the parent's children; a new reference. */
static void *make_node(const char *name, void *parent) {
    void *node = new_dict();

    put(node, "name", str(name));
    put(node, "children", new_list());
    if (parent != NULL) {
        must_ok(mp_dict_set_cstr(node, "parent", parent), "mp_dict_set");
        must_ok(mp_list_append(mp_dict_get_cstr(parent, "children"), node), "mp_list_append");
    }
    return node;
}

static void print_tree(const void *node, int indent) {
    const void *children = mp_dict_get_cstr(node, "children");
    const void *parent = mp_dict_get_cstr(node, "parent");

    printf("  %*s%s", indent, "", neap_str_data(mp_dict_get_cstr(node, "name")));
    if (parent != NULL)
        printf("  (parent: %s)", neap_str_data(mp_dict_get_cstr(parent, "name")));
    putchar('\n');
    for (size_t i = 0; i < mp_list_len(children); i++)
        print_tree(mp_list_get(children, i), indent + 4);
}

static void demo_cycles(const char *dot_path) {
    static const char *const kids[3] = {"a", "b", "c"};
    void *self_list, *d1, *d2, *root, *b = NULL, *label, *wr, *o, *children;
    neap_objarray_t refs = {NULL, 0};
    intptr_t found;

    printf("\n4. Reference cycles\n");
    must_ok(neap_gc_callbacks_add(on_collection, NULL), "neap_gc_callbacks_add");

    self_list = new_list(); /* l = [1, 'x']; l.append(l) */
    push(self_list, num(1));
    push(self_list, str("x"));
    must_ok(mp_list_append(self_list, self_list), "mp_list_append");
    show("l", self_list);

    d1 = new_dict(); /* two dicts holding each other */
    d2 = new_dict();
    put(d1, "name", str("d1"));
    put(d2, "name", str("d2"));
    must_ok(mp_dict_set_cstr(d1, "peer", d2), "mp_dict_set");
    must_ok(mp_dict_set_cstr(d2, "peer", d1), "mp_dict_set");
    show("d1", d1);

    root = make_node("root", NULL); /* 10 nodes, each a dict and a list */
    for (int i = 0; i < 3; i++) {
        void *kid = make_node(kids[i], root);
        for (int j = 1; j <= 2; j++) {
            char name[8];
            snprintf(name, sizeof name, "%s%d", kids[i], j);
            neap_decref(make_node(name, kid));
        }
        if (i == 1)
            b = kid; /* our reference to 'b', dropped with the others */
        else
            neap_decref(kid);
    }
    printf("  the tree (each node a dict; children in a list; 'parent' points back):\n");
    print_tree(root, 2);
    children = str("children");
    printf("  the key 'children' is one interned object held by %ld dicts\n",
           (long)neap_refcnt(children) - 1);
    CHECK(neap_refcnt(children) == 11);
    neap_decref(children);

    label = str("the tree's root");
    wr = must(neap_weakref_new(root, on_root_gone, label), "neap_weakref_new");
    neap_decref(label); /* the weak reference holds it */
    CHECK(neap_weakref_count(root) == 1);

    must_ok(neap_gc_get_referrers(&b, 1, &refs), "neap_gc_get_referrers");
    printf("  gc.get_referrers(b): %zu objects\n", refs.count);
    for (size_t i = 0; i < refs.count; i++) {
        char buf[96];
        mp_describe(refs.items[i], buf, sizeof buf);
        printf("    %s\n", buf);
    }
    CHECK(refs.count == 3); /* root's children list, and b1's and b2's 'parent' */
    neap_objarray_release(&refs);

    if (dot_path != NULL) {
        FILE *f = fopen(dot_path, "w");
        int r;
        if (f == NULL) {
            fprintf(stderr, "minipy: %s: %s\n", dot_path, strerror(errno));
            exit(1);
        }
        r = neap_gc_show_backrefs(b, 3, f);
        CHECK(fclose(f) == 0 && r == 0);
        printf("  wrote what refers to 'b', 3 levels back, to %s (dot -Tsvg to draw it)\n",
               dot_path);
    }

    show_counts("count_by_type, in use:");
    printf("  (the ints are the small-int cache, %d..%d; strs are untracked, like ints)\n",
           MP_SMALLINT_MIN, MP_SMALLINT_MAX);
    neap_decref(self_list);
    neap_decref(d1);
    neap_decref(d2);
    neap_decref(b);
    neap_decref(root);
    show_counts("references dropped:");
    CHECK(neap_type_live(&mp_list_type) == 11 && neap_type_live(&mp_dict_type) == 12);
    o = neap_weakref_get(wr);
    printf("  the weak reference still gives the root: %s (a cycle keeps it alive)\n",
           o != NULL ? "yes" : "no");
    CHECK(o != NULL);
    neap_xdecref(o);

    found = neap_gc_collect(2);
    printf("  gc.collect(2) = %ld unreachable objects\n", (long)found);
    /* 1 list + 2 dicts + 10 nodes x (dict + children list) */
    CHECK(found == 23);
    CHECK(mp_root_gone == 1);
    o = neap_weakref_get(wr);
    CHECK(o == NULL);
    neap_xdecref(o);
    show_counts("after gc.collect(2):");
    CHECK(neap_type_live(&mp_list_type) == 0 && neap_type_live(&mp_dict_type) == 0);
    neap_decref(wr);
    CHECK(neap_gc_callbacks_remove(on_collection, NULL) == 0);
}

/* --- 5. gc.freeze ---------------------------------------------------------- */

static void demo_freeze(void) {
    void *startup, *modules, *sys, *os, *path, *req, *history;
    size_t tracked;
    intptr_t found;

    printf("\n5. gc.freeze\n");
    neap_gc_collect(2);

    /* What a program builds at startup: a module table whose modules point
     * back at it (a cycle). */
    startup = new_dict();
    modules = new_dict();
    sys = new_dict();
    os = new_dict();
    path = new_list();
    push(path, str("/lib"));
    push(path, str("/usr/lib"));
    put(sys, "name", str("sys"));
    put(sys, "path", path);
    must_ok(mp_dict_set_cstr(sys, "modules", modules), "mp_dict_set");
    put(os, "name", str("os"));
    must_ok(mp_dict_set_cstr(os, "modules", modules), "mp_dict_set");
    put(modules, "sys", sys);
    put(modules, "os", os);
    put(startup, "name", str("startup"));
    put(startup, "modules", modules);
    tracked = tracked_live();

    neap_gc_freeze();
    printf("  gc.freeze(): %zu objects in the permanent generation\n",
           neap_gc_get_freeze_count());
    CHECK(tracked == 5 && neap_gc_get_freeze_count() == tracked);

    /* Later the startup state is dropped: the startup dict goes by its
     * count; the module table's cycle becomes garbage, but frozen. */
    neap_decref(startup);
    CHECK(neap_gc_get_freeze_count() == 4);

    req = new_dict(); /* a request's garbage cycle, made after the freeze */
    history = new_list();
    put(req, "name", str("request"));
    push(history, str("start"));
    must_ok(mp_list_append(history, req), "mp_list_append");
    put(req, "history", history);
    neap_decref(req);

    found = neap_gc_collect(2);
    printf("  gc.collect(2) = %ld: the request's cycle; the 4 frozen objects, garbage too,\n"
           "    are not looked at (%zu still alive)\n",
           (long)found, tracked_live());
    CHECK(found == 2 && tracked_live() == 4);

    neap_gc_unfreeze();
    CHECK(neap_gc_get_freeze_count() == 0);
    found = neap_gc_collect(2);
    printf("  gc.unfreeze(); gc.collect(2) = %ld: now the startup cycle goes\n", (long)found);
    CHECK(found == 4 && tracked_live() == 0);
}

/* --- 6. nothing left ------------------------------------------------------- */

static int final_check(void) {
    neap_type_t *types[] = {&mp_int_type, &neap_str_type, &mp_list_type, &mp_dict_type,
                            &neap_weakref_type};
    size_t left = 0;

    printf("\n6. Everything made is gone\n");
    mp_fini();            /* the small-int cache */
    neap_gc_collect(2);   /* also empties the free lists */
    neap_freelists_clear();
    printf("  alive:");
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t n = neap_type_live(types[i]);
        printf(" %s=%zu", types[i]->name, n);
        left += n;
    }
    printf(", interned strings=%zu\n", neap_intern_count());
    left += neap_intern_count();
    if (left != 0)
        fprintf(stderr, "minipy: %zu objects still alive at the end\n", left);
    return left == 0;
}

int main(int argc, char **argv) {
    const char *dot_path = NULL;
    int clean;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dot") == 0 && i + 1 < argc) {
            dot_path = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--dot FILE]\n", argv[0]);
            return 2;
        }
    }

    neap_gc_disable(); /* explicit collections only: exact counts */
    printf("minipy: a tiny object system on neap (automatic collection off)\n\n");
    CHECK(!neap_gc_isenabled());

    demo_interning();
    demo_containers();
    demo_freelist();
    demo_cycles(dot_path);
    demo_freeze();
    clean = final_check();
    neap_gc_enable();

    if (mp_failures != 0 || !clean) {
        fprintf(stderr, "minipy: FAILED: %d of %d checks failed%s\n", mp_failures, mp_checks,
                clean ? "" : ", objects left alive");
        return 1;
    }
    printf("\nminipy: all %d checks passed, nothing left alive\n", mp_checks);
    return 0;
}
