#!/usr/bin/env bash
# run.sh NEAP CASE -- the `neap run` and `neap stats` commands, case by case
# (label: cli).  NEAP is the neap executable of the build tree; libneap.so
# must be next to it, as `neap run` expects.
#
#   status     exit statuses pass through: 0, 3, 127 (not found), 2 (usage);
#              options as --opt=VALUE; values out of range refused (2), the
#              ends of each range taken by the library without a warning;
#              options stop at the program (its own are never parsed)
#   signal     a program killed by SIGTERM makes neap run die of SIGTERM;
#              SIGTERM sent to neap run reaches the program
#   preload    the program and a child it forks and execs run on neap
#   python     PYTHONMALLOC=malloc for every process, unless set; a Python
#              that kept pymalloc all the same is named in the summary
#   summary    the summary has its lines, on stderr or in -o FILE, and the
#              statistics record is removed afterwards
#   stats      neap stats PID shows a running program's statistics; the list
#              shows it; --watch ends when it exits; errors for a bad pid and
#              a corrupt record
#   stats_trust  /tmp/neap-<uid> as a symbolic link, with group or other
#              permission bits, or (as root) owned by another uid: neap stats
#              refuses it with a message and exit 1, shows no record from it
#              and removes nothing through it; the same directory made 0700
#              is read.  In a private /tmp where the system allows one, else
#              with the user's own directory put aside meanwhile (below)
#   stats_records  entries of the directory that are not records: a FIFO and
#              a symbolic link are refused at once, by neap stats PID and in
#              the list; an oversized record is refused; none is removed
#   stats_escape  a record's command line with escape sequences, C0 and C1
#              controls is shown escaped (no raw control byte reaches the
#              output, UTF-8 text is kept), in the list, for the pid, and in
#              the message about a malformed line
#   mesh       neap run --mesh gives the program NEAP_MESH=1 and
#              NEAP_BACKGROUND=1 (over what the user's environment has), and
#              neither without it; with --debug-malloc or --no-background it
#              is refused with exit 2 and a message, and the program is not
#              run; the summary has a meshing line (or the library said why
#              it does not mesh); a record that says mesh 1 shows its counters
#              in neap stats PID, one without it or with mesh 0 no such line
#   trace      neap run --trace FILE: a Python program's trace names its
#              allocation sites (exact, sampled, and with the DWARF unwinder
#              whole stacks up to main); a program killed by
#              SIGKILL leaves a trace readable up to its last flush; its
#              children write FILE.<pid>; bad options are refused
#   tracefiles a launcher that starts Python twice under --trace FILE: the
#              summary names each process's FILE.<pid> with a neap report
#              hint, and the note it was read from is removed
#   tracethreads (third argument: tests/cli/trace_prog.c built, as for
#              every trace* case below) 100 threads leaking 10^7 bytes,
#              each its first allocations: every byte is live at exit in
#              the trace
#   tracerealloc 1000 blocks each moved by realloc twice (and grown once
#              more), then freed: the trace has one free per block it
#              knows, none of a block it does not
#   traceenv   NEAP_TRACE=FILE set by hand (no neap run) for a program that
#              forks a child and then one that execs: FILE is the parent's
#              whole trace, the exec'd child's is FILE.<pid>, the forked
#              child writes none; the same under neap run --trace
#   tracemark  (third argument: tests/cli/mark_prog.c built, as for
#              markcmd) a program that calls neap_trace_mark("phase1"),
#              frees most of its blocks, marks "phase2", then makes and
#              frees a huge block: neap report --at mark:phase1, mark:2,
#              peak and end show each moment's live set of its sites
#              (exact figures), the live bytes between the two marks differ
#              by what was freed, the huge block's pinning at the peak in
#              words; bad WHENs exit 2
#   markcmd    neap mark PID LABEL against the running program (it waits on
#              a FIFO: no sleep decides anything): the mark is in the trace
#              file when neap mark returns, and the report at it shows the
#              blocks live then; neap mark of a process not traced, of no
#              process, with bad arguments; the program's note removed at
#              its exit, a dead process's note by neap mark and neap stats
#   filevalue  --trace, -o, --lib given "--" or an option as their value
#              (the next argument taken as the file name) refused with exit
#              2, and no file written
#   parentdeath  neap run killed by SIGKILL: the program it runs is
#              killed too (it would run on, orphaned)
#   statsrun   neap stats given neap run's pid (a shell's $!) shows the
#              program the run started, and names the run's other process
#   rundemo    ./run-demo --help and ./run-tests --help print their help
#              without installing, configuring or building anything; the
#              options are neap demo's; run-tests refuses other arguments
#   depslock   scripts/deps.sh's neap_install, another apt-get holding the
#              package lists' lock (a stand-in apt-get): it waits and tries
#              again, DPkg::Lock::Timeout on every call; other failures are
#              not tried again
#   lastthread (third argument: tests/cli/last_thread.c built) a program
#              whose last thread ends by pthread_exit exits 0 with its atexit
#              handlers run, in a main thread and in a forked child, though
#              the background thread runs; that thread is named
set -u
NEAP=$1
CASE=$2
# stats_trust replaces /tmp/neap-<uid>.  Where the system allows it (as root,
# or in a user namespace) it runs in a mount namespace of its own with a
# private /tmp, so that nothing publishing meanwhile is disturbed; elsewhere
# (or when the build or this script is under /tmp) the user's directory is
# put aside for the test's time, and the test runs alone (RUN_SERIAL).
if [ "$CASE" = stats_trust ] && [ -z "${NEAP_TEST_PRIVATE_TMP:-}" ]; then
    ns="unshare -m --propagation private"
    [ "$(id -u)" -eq 0 ] || ns="unshare -r -m --propagation private"
    private=yes
    for d in "$(dirname "$NEAP")" "$(dirname "$0")"; do
        case $(cd "$d" && pwd -P) in
        /tmp | /tmp/*) private=no ;;
        esac
    done
    # shellcheck disable=SC2086 # $ns: the command and its options
    if [ $private = yes ] && $ns sh -c 'mount -t tmpfs tmpfs /tmp' 2>/dev/null; then
        exec $ns env NEAP_TEST_PRIVATE_TMP=1 TMPDIR=/tmp "$BASH" -c \
            'mount -t tmpfs tmpfs /tmp && exec "$BASH" "$0" "$@"' "$0" "$@"
    fi
fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd)   # the source tree
WORK=$(mktemp -d "${TMPDIR:-/tmp}/neap-cli.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1
unset LD_PRELOAD PYTHONMALLOC NEAP_PUBLISH NEAP_RUN_PID NEAP_SHOW_STATS
PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || PY=""
RECDIR=/tmp/neap-$(id -u)

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# forge FILE PID COMMAND: a well-formed running record of PID, as the library
# writes one, with COMMAND as its command line
forge() {
    local now
    now=$(date +%s)
    printf 'neap-stats 1\nversion 0.1.0\npid %s\nstate running\ntime_ms %s000\nstart_ms %s000\n' \
        "$2" "$now" "$now" >"$1"
    printf 'interval_ms 1000\ncommand %s\nbytes_live 1048576\nrss 2097152\nend\n' "$3" >>"$1"
}

# controls FILE: the bytes of FILE that are controls (C0 but newline, DEL,
# C1), as decimal numbers; nothing when there is none
controls() {
    od -An -v -tu1 "$1" | tr -s ' ' '\n' |
        awk '$1 != "" && (($1 < 32 && $1 != 10) || ($1 >= 127 && $1 < 160))'
}

# expect_status WANT CMD...: runs CMD, checks its exit status
expect_status() {
    local want=$1
    shift
    "$@" >"$WORK/out" 2>"$WORK/err"
    local got=$?
    [ "$got" -eq "$want" ] || {
        cat "$WORK/err" >&2
        fail "$* exited with $got, expected $want"
    }
}

case $CASE in
status)
    expect_status 0 "$NEAP" run -q -- true
    expect_status 3 "$NEAP" run -q -- sh -c 'exit 3'
    expect_status 127 "$NEAP" run -q -- no-such-command-here
    grep -q "no-such-command-here" "$WORK/err" || fail "no message for a missing command"
    expect_status 2 "$NEAP" run --bogus -- true
    expect_status 2 "$NEAP" run
    expect_status 2 "$NEAP" run --purge-delay -- true
    expect_status 2 "$NEAP" run --purge-max 12X -- true
    expect_status 0 "$NEAP" run -q --purge-max 4MiB --purge-delay 5 -- true
    expect_status 2 "$NEAP" run --bogus -- true
    grep -q "unknown option '--bogus'" "$WORK/err" || fail "the unknown option is not named: $(cat "$WORK/err")"
    expect_status 2 "$NEAP" run --quiet=yes -- true
    grep -q "option '--quiet' takes no value" "$WORK/err" || fail "--quiet=yes: $(cat "$WORK/err")"
    expect_status 2 "$NEAP" run -o
    grep -q "option '-o' needs a value" "$WORK/err" || fail "-o without a value: $(cat "$WORK/err")"
    # --opt=VALUE: the program gets each value as the library reads it
    out=$("$NEAP" run -q --purge-max=4MiB --purge-delay=5 --arena-reserve=0 --publish=0 -- \
        sh -c 'echo "$NEAP_PURGE_MAX $NEAP_PURGE_DELAY $NEAP_ARENA_RESERVE $NEAP_PUBLISH"')
    [ "$out" = "4194304 5 0 0" ] || fail "--opt=VALUE forms gave '$out', expected '4194304 5 0 0'"
    "$NEAP" run --output="$WORK/o.txt" -- true 2>"$WORK/err" || fail "--output=FILE failed"
    [ -s "$WORK/o.txt" ] && [ ! -s "$WORK/err" ] || fail "--output=FILE did not write the summary there"
    # values out of range are refused with exit 2, never replaced
    for bad in "--purge-delay 3600001" "--purge-delay=-1" "--purge-max 1025G" "--arena-reserve=1025" \
               "--publish 3600001" "--frames 0" "--frames=129" "--frames 999" "--sample 1025G" \
               "--sample=1T"; do
        # shellcheck disable=SC2086 # word splitting wanted: "--opt value"
        expect_status 2 "$NEAP" run --trace "$WORK/r.trc" $bad -- true
        grep -q "out of range\|wants a" "$WORK/err" || fail "$bad: $(cat "$WORK/err")"
    done
    grep -q -- "--sample wants a size" "$WORK/err" || fail "--sample=1T: $(cat "$WORK/err")"
    expect_status 2 "$NEAP" run --trace "$WORK/r.trc" --frames 999 -- true
    grep -q -- "--frames 999 is out of range: it must be from 1 to 128" "$WORK/err" || fail "--frames 999: $(cat "$WORK/err")"
    # the ends of each range are the library's: it takes them without a warning
    expect_status 0 "$NEAP" run -q --purge-delay 3600000 --purge-max 1024G --arena-reserve 1024 \
        --publish 3600000 --trace "$WORK/r.trc" --frames 128 --sample 1024G -- true
    ! grep -q "warning" "$WORK/err" || fail "the library refused a value neap run accepted: $(cat "$WORK/err")"
    expect_status 0 "$NEAP" run -q --purge-delay 0 --purge-max 0 --arena-reserve 0 --publish 0 \
        --trace "$WORK/r.trc" --frames 1 --sample 0 -- true
    ! grep -q "warning" "$WORK/err" || fail "the library refused a value neap run accepted: $(cat "$WORK/err")"
    # options stop at the program: its own arguments are never taken
    out=$("$NEAP" run -q sh -c 'echo "$@"' sh --frames 0 -q --bogus) || fail "the program's options were parsed"
    [ "$out" = "--frames 0 -q --bogus" ] || fail "the program got '$out'"
    expect_status 127 "$NEAP" run -q -- --not-an-option
    ;;
signal)
    "$NEAP" run -q -- sh -c 'kill -TERM $$; sleep 5'
    got=$?
    [ $got -eq 143 ] || fail "program killed by SIGTERM: neap run exited $got, expected 143"
    # SIGTERM sent to neap run itself reaches the program, which reports it
    "$NEAP" run -q -- sh -c 'trap "echo got-term; exit 7" TERM; sleep 10 >/dev/null 2>&1 & wait' >"$WORK/out" &
    runner=$!
    sleep 1
    kill -TERM $runner
    wait $runner
    got=$?
    [ $got -eq 7 ] || fail "forwarded SIGTERM: exit $got, expected 7"
    grep -q got-term "$WORK/out" || fail "the program did not see the forwarded SIGTERM"
    ;;
preload)
    # the program, and a process it forks and execs, both have neap mapped
    "$NEAP" run -q -- sh -c 'grep -c libneap /proc/$$/maps; sh -c "grep -c libneap /proc/\$\$/maps"' \
        >"$WORK/out" 2>"$WORK/err" || fail "neap run failed: $(cat "$WORK/err")"
    [ "$(grep -c '^[1-9]' "$WORK/out")" -eq 2 ] || fail "libneap.so not mapped in both processes: $(cat "$WORK/out")"
    ;;
python)
    [ -n "$PY" ] || { echo "SKIP: no python3"; exit 77; }
    out=$("$NEAP" run -q -- "$PY" -c 'import os; print(os.environ.get("PYTHONMALLOC"))')
    [ "$out" = malloc ] || fail "PYTHONMALLOC under neap run is '$out', expected malloc"
    out=$(PYTHONMALLOC=pymalloc "$NEAP" run -q -- "$PY" -c 'import os; print(os.environ["PYTHONMALLOC"])')
    [ "$out" = pymalloc ] || fail "a PYTHONMALLOC the user set was changed to '$out'"
    out=$("$NEAP" run -q --no-python -- "$PY" -c 'import os; print(os.environ.get("PYTHONMALLOC"))')
    [ "$out" = None ] || fail "--no-python still set PYTHONMALLOC='$out'"
    # whatever starts the interpreter: a shell, env, a script with a shebang
    printf '#!%s\nimport os\nprint(os.environ.get("PYTHONMALLOC"))\n' "$PY" >"$WORK/script.py"
    chmod +x "$WORK/script.py"
    out=$("$NEAP" run -q -- sh -c '"$0" -c "import os; print(os.environ.get(\"PYTHONMALLOC\"))"; true' "$PY")
    [ "$out" = malloc ] || fail "a Python started by a shell under neap run has PYTHONMALLOC='$out'"
    out=$("$NEAP" run -q -- env "$PY" -c 'import os; print(os.environ.get("PYTHONMALLOC"))')
    [ "$out" = malloc ] || fail "a Python started by env under neap run has PYTHONMALLOC='$out'"
    out=$("$NEAP" run -q -- "$WORK/script.py")
    [ "$out" = malloc ] || fail "a Python script run by its shebang under neap run has PYTHONMALLOC='$out'"
    # a Python that keeps pymalloc anyway is named in the summary: one that
    # ignores the environment (-E), and two of a shell with PYTHONMALLOC set
    "$NEAP" run -- "$PY" -E -c 'pass' 2>"$WORK/err" || fail "neap run failed: $(cat "$WORK/err")"
    grep -q "note: 1 Python process of this run kept pymalloc" "$WORK/err" ||
        { cat "$WORK/err"; fail "the summary does not say that python -E kept pymalloc"; }
    grep -q "pid [0-9]* pymalloc .* -E -c pass" "$WORK/err" ||
        { cat "$WORK/err"; fail "the summary does not name the python -E process"; }
    PYTHONMALLOC=pymalloc "$NEAP" run -- sh -c '"$0" -c pass; "$0" -c "x = 1"' "$PY" 2>"$WORK/err" ||
        fail "neap run failed: $(cat "$WORK/err")"
    grep -q "note: 2 Python processes of this run kept pymalloc" "$WORK/err" ||
        { cat "$WORK/err"; fail "the summary does not count two Python processes on pymalloc"; }
    "$NEAP" run -- "$PY" -c 'pass' 2>"$WORK/err" || fail "neap run failed: $(cat "$WORK/err")"
    ! grep -q "kept pymalloc" "$WORK/err" || { cat "$WORK/err"; fail "a Python on neap was said to keep pymalloc"; }
    ls "$RECDIR" 2>/dev/null | grep -q '\.python$' && fail "a note of Python processes was left in $RECDIR"
    # the interpreter's objects are neap's: neap_owns says so for a new object
    out=$("$NEAP" run -q -- "$PY" -c '
import ctypes
owns = ctypes.CDLL(None).neap_owns
owns.argtypes = [ctypes.c_void_p]
x = [object() for _ in range(1000)]
print(sum(owns(id(o)) for o in x))')
    [ "$out" = 1000 ] || fail "neap_owns found $out of 1000 Python objects on neap"
    ;;
summary)
    "$NEAP" run -- sh -c 'exec "$0" -c "x = [bytes(100) for _ in range(200000)]; del x"' "${PY:-python3}" \
        2>"$WORK/err" || fail "neap run failed: $(cat "$WORK/err")"
    for line in "exited with status 0" "RSS" "live in blocks" "given back to OS" "arenas" "busiest size classes"; do
        grep -q "$line" "$WORK/err" || { cat "$WORK/err"; fail "summary has no '$line' line"; }
    done
    grep -q "at exit:" "$WORK/err" || { cat "$WORK/err"; fail "summary is not the exit record"; }
    "$NEAP" run -o "$WORK/summary.txt" -- true 2>"$WORK/err"
    [ -s "$WORK/summary.txt" ] || fail "-o FILE wrote nothing"
    [ ! -s "$WORK/err" ] || fail "-o FILE still wrote to stderr: $(cat "$WORK/err")"
    "$NEAP" run -q -- sh -c 'echo $$ >pid'
    [ ! -e "$RECDIR/$(cat pid)" ] || fail "the statistics record of a finished run was left behind"
    cat "$WORK/summary.txt"
    ;;
stats)
    [ -n "$PY" ] || { echo "SKIP: no python3"; exit 77; }
    "$NEAP" run -q --publish 200 -- "$PY" -c '
import os, time
x = [str(i) * 4 for i in range(300000)]
open("pid", "w").write(str(os.getpid()))
for _ in range(600):   # until the test says go (at most 60 s)
    if os.path.exists("go"):
        break
    time.sleep(0.1)' &
    runner=$!
    for _ in $(seq 50); do [ -s pid ] && break; sleep 0.1; done
    pid=$(cat pid) || fail "the program did not start"
    sleep 0.5
    "$NEAP" stats "$pid" >"$WORK/stats" 2>&1 || { cat "$WORK/stats"; fail "neap stats $pid failed"; }
    grep -q "statistics of pid $pid" "$WORK/stats" || fail "no header: $(cat "$WORK/stats")"
    grep -q "live in blocks" "$WORK/stats" || fail "no memory lines"
    live=$(sed -n 's/.*live in blocks *\([0-9.]*\) MiB.*/\1/p' "$WORK/stats")
    [ -n "$live" ] || fail "live bytes are not in MiB: $(grep live "$WORK/stats")"
    "$NEAP" stats >"$WORK/list" || fail "neap stats (the list) failed"
    grep -q "^ *$pid " "$WORK/list" || fail "the list does not show $pid: $(cat "$WORK/list")"
    # the watch shows the running program first, then its exit
    timeout 60 "$NEAP" stats "$pid" --interval 300 >"$WORK/watch" &
    watcher=$!
    for _ in $(seq 300); do [ -s "$WORK/watch" ] && break; sleep 0.1; done
    grep -q "statistics of pid $pid" "$WORK/watch" || fail "--watch showed nothing: $(cat "$WORK/watch")"
    touch go
    wait $watcher || fail "--watch did not end cleanly"
    grep -q "has exited" "$WORK/watch" || fail "--watch did not notice the exit"
    wait $runner || fail "the program failed"
    expect_status 1 "$NEAP" stats 1
    grep -q "does not publish" "$WORK/err" || fail "no message for a process that does not publish"
    # a corrupt record is refused with the reason, and nothing else shown
    sh -c 'printf "neap-stats 1\npid $$\nstate running\nrss 1" >'"$RECDIR"'/$$; sleep 2' &
    fake=$!
    sleep 0.5
    expect_status 1 "$NEAP" stats $fake
    grep -q "truncated" "$WORK/err" || fail "a truncated record was not called truncated: $(cat "$WORK/err")"
    wait $fake
    rm -f "$RECDIR/$fake"
    ;;
stats_trust)
    saved=""
    if [ -e "$RECDIR" ] || [ -L "$RECDIR" ]; then
        saved=$RECDIR.saved.$$
        mv "$RECDIR" "$saved" || fail "cannot put $RECDIR aside"
    fi
    sleep 60 &
    live=$!
    trap 'kill $live 2>/dev/null; rm -rf "$RECDIR"; [ -z "$saved" ] || mv "$saved" "$RECDIR"; rm -rf "$WORK"' EXIT
    dead=2147483646   # above any pid_max: never a process
    # a symbolic link to another user's directory, holding numerically named
    # files: records of dead processes there would be removed as stale
    mkdir victim
    forge victim/$dead $dead forged-dead
    echo precious >victim/$((dead - 1))
    forge victim/$live $live forged-live
    ln -s "$WORK/victim" "$RECDIR"
    expect_status 1 timeout -s KILL 20 "$NEAP" stats
    grep -q "$RECDIR is a symbolic link" err || fail "the link is not named as such: $(cat err)"
    ! grep -q forged out || fail "a record read through the link was shown: $(cat out)"
    expect_status 1 timeout -s KILL 20 "$NEAP" stats $dead
    grep -q "$RECDIR is a symbolic link" err || fail "neap stats $dead: $(cat err)"
    expect_status 1 timeout -s KILL 20 "$NEAP" stats $live
    ! grep -q forged out || fail "a record read through the link was shown: $(cat out)"
    [ -f victim/$dead ] && [ -f victim/$((dead - 1)) ] && [ -f victim/$live ] ||
        fail "files were removed through the link: $(ls victim)"
    rm -f "$RECDIR"
    # not a directory
    forge "$RECDIR" $live forged-file
    expect_status 1 timeout -s KILL 20 "$NEAP" stats
    grep -q "$RECDIR is not a directory" err || fail "a file for the directory: $(cat err)"
    rm -f "$RECDIR"
    # group or other permission bits: anyone may have put the records there
    for mode in 0755 0777 0770 0701; do
        mkdir "$RECDIR" && chmod $mode "$RECDIR" || fail "mkdir $RECDIR"
        forge "$RECDIR/$live" $live forged-mode
        forge "$RECDIR/$dead" $dead forged-dead
        expect_status 1 timeout -s KILL 20 "$NEAP" stats
        grep -q "$RECDIR has mode $mode, not 0700" err || fail "mode $mode: $(cat err)"
        ! grep -q forged out || fail "mode $mode: a record was shown: $(cat out)"
        expect_status 1 timeout -s KILL 20 "$NEAP" stats $live
        grep -q "$RECDIR has mode $mode, not 0700" err || fail "mode $mode, neap stats $live: $(cat err)"
        ! grep -q forged out || fail "mode $mode: the record was shown: $(cat out)"
        [ -f "$RECDIR/$dead" ] || fail "mode $mode: a record was removed"
        rm -rf "$RECDIR"
    done
    # another user's: only root can make one (not the root of a user
    # namespace, where uid 65534 is not mapped)
    mkdir -m 0700 "$RECDIR" || fail "mkdir $RECDIR"
    forge "$RECDIR/$live" $live forged-owner
    if chown -R 65534 "$RECDIR" 2>/dev/null; then
        expect_status 1 timeout -s KILL 20 "$NEAP" stats $live
        grep -q "$RECDIR is owned by uid 65534, not you" err || fail "another owner: $(cat err)"
        ! grep -q forged out || fail "another owner: the record was shown: $(cat out)"
        expect_status 1 timeout -s KILL 20 "$NEAP" stats
        grep -q "$RECDIR is owned by uid 65534, not you" err || fail "another owner, list: $(cat err)"
    else
        echo "note: not root, so no directory of another user to try"
    fi
    rm -rf "$RECDIR"
    # the same records in the user's own 0700 directory are read: what is
    # refused above is refused for the reason given
    mkdir -m 0700 "$RECDIR" || fail "mkdir $RECDIR"
    forge "$RECDIR/$live" $live forged-mine
    expect_status 0 timeout -s KILL 20 "$NEAP" stats $live
    grep -q "statistics of pid $live: forged-mine" out || fail "the user's own record: $(cat out)"
    ;;
stats_records)
    mkdir -p -m 0700 "$RECDIR"
    sleep 60 &
    live=$!
    sleep 60 &
    live2=$!
    sleep 60 &
    live3=$!
    trap 'kill $live $live2 $live3 2>/dev/null; rm -f "$RECDIR/$live" "$RECDIR/$live2" "$RECDIR/$live3"; rm -rf "$WORK"' EXIT
    # a FIFO: reading it would wait for a writer forever
    mkfifo "$RECDIR/$live" || fail "mkfifo"
    # a symbolic link to a record elsewhere
    forge "$WORK/elsewhere" $live2 forged-link
    ln -s "$WORK/elsewhere" "$RECDIR/$live2"
    # larger than any record the library writes
    forge "$RECDIR/$live3" $live3 "$(head -c 40000 /dev/zero | tr '\0' x)"
    start=$(date +%s)
    expect_status 1 timeout -s KILL 20 "$NEAP" stats $live
    grep -q "not a regular file" err || fail "the FIFO: $(cat err)"
    expect_status 1 timeout -s KILL 20 "$NEAP" stats $live2
    grep -q "symbolic link" err || fail "the link: $(cat err)"
    ! grep -q forged out || fail "the record behind the link was shown"
    expect_status 1 timeout -s KILL 20 "$NEAP" stats $live3
    grep -q "too large" err || fail "the oversized record: $(cat err)"
    expect_status 0 timeout -s KILL 20 "$NEAP" stats
    grep -q "^ *$live  (unreadable record: .*not a regular file" out || fail "the FIFO in the list: $(cat out)"
    grep -q "^ *$live2  (unreadable record: .*symbolic link" out || fail "the link in the list: $(cat out)"
    grep -q "^ *$live3  (unreadable record: .*too large" out || fail "the oversized record in the list: $(cat out)"
    [ $(($(date +%s) - start)) -le 5 ] || fail "neap stats took $(($(date +%s) - start)) s"
    # once the processes are gone, the list removes the stale regular
    # record, and leaves what is not one
    kill $live $live2 $live3
    wait $live $live2 $live3 2>/dev/null
    expect_status 0 timeout -s KILL 20 "$NEAP" stats
    [ -p "$RECDIR/$live" ] && [ -L "$RECDIR/$live2" ] || fail "the FIFO or the link was removed"
    [ ! -e "$RECDIR/$live3" ] || fail "the stale record was not removed"
    [ -f "$WORK/elsewhere" ] || fail "the link's target was removed"
    # a class with counts near 2^64 (only a forged record has them): its
    # usage is a share, not an overflowed product
    sleep 60 &
    live4=$!
    trap 'kill $live4 2>/dev/null; rm -f "$RECDIR/$live4"; rm -rf "$WORK"' EXIT
    forge "$RECDIR/$live4" $live4 huge-counts
    sed -i 's/^end$/class 1 16 1 18446744073709551000 1844674407370955100 5\nend/' "$RECDIR/$live4"
    expect_status 0 timeout -s KILL 20 "$NEAP" stats $live4
    grep -q " 91%" out || { cat out; fail "usage of a class with huge counts is not 91%"; }
    kill $live4
    ;;
stats_escape)
    mkdir -p -m 0700 "$RECDIR"
    sleep 60 &
    live=$!
    sleep 60 &
    live2=$!
    trap 'kill $live $live2 2>/dev/null; rm -f "$RECDIR/$live" "$RECDIR/$live2"; rm -rf "$WORK"' EXIT
    forge "$RECDIR/$live" $live $'evil\e]0;owned\a\e[2J\x9b31m\x7f\x01 caf\xc3\xa9 \xc2\x9b \xff end'
    expect_status 0 timeout -s KILL 20 "$NEAP" stats $live
    [ -z "$(controls out)" ] || fail "raw control bytes in neap stats PID: $(controls out | tr '\n' ' ')"
    grep -qF 'evil\x1b]0;owned\x07\x1b[2J\x9b31m\x7f\x01 café \xc2\x9b \xff end' out ||
        fail "the command line is not shown escaped: $(grep -a evil out | od -c)"
    expect_status 0 timeout -s KILL 20 "$NEAP" stats
    [ -z "$(controls out)" ] || fail "raw control bytes in the list: $(controls out | tr '\n' ' ')"
    grep -qF 'evil\x1b]0;owned\x07' out || fail "the list does not show the command escaped: $(cat out)"
    # a malformed line is quoted in the message: escaped too
    printf 'neap-stats 1\npid %s\nstate running\nclass 1 \033[31m\nend\n' $live2 >"$RECDIR/$live2"
    expect_status 1 timeout -s KILL 20 "$NEAP" stats $live2
    [ -z "$(controls err)" ] || fail "raw control bytes in the message: $(controls err | tr '\n' ' ')"
    grep -qF '\x1b[31m' err || fail "the malformed line is not quoted escaped: $(cat err)"
    expect_status 0 timeout -s KILL 20 "$NEAP" stats
    [ -z "$(controls out)" ] || fail "raw control bytes in the list: $(controls out | tr '\n' ' ')"
    ;;
mesh)
    unset NEAP_MESH NEAP_BACKGROUND NEAP_DEBUG_MALLOC
    # the variables the program gets, with and without --mesh
    out=$("$NEAP" run -q --mesh -- sh -c 'echo "$NEAP_MESH $NEAP_BACKGROUND"') || fail "neap run --mesh failed"
    [ "$out" = "1 1" ] || fail "under neap run --mesh NEAP_MESH NEAP_BACKGROUND are '$out', expected '1 1'"
    out=$(NEAP_MESH=0 NEAP_BACKGROUND=0 "$NEAP" run -q --mesh -- sh -c 'echo "$NEAP_MESH $NEAP_BACKGROUND"')
    [ "$out" = "1 1" ] || fail "--mesh over NEAP_MESH=0 NEAP_BACKGROUND=0 gave '$out', expected '1 1'"
    out=$("$NEAP" run -q -- sh -c 'echo "${NEAP_MESH-unset} $NEAP_BACKGROUND"')
    [ "$out" = "unset 1" ] || fail "without --mesh NEAP_MESH NEAP_BACKGROUND are '$out', expected 'unset 1'"
    # refused, before the program runs
    for bad in "--mesh --debug-malloc" "--debug-malloc --mesh" "--mesh --no-background"; do
        # shellcheck disable=SC2086 # word splitting wanted: two options
        expect_status 2 "$NEAP" run $bad -- sh -c 'touch ran'
        grep -q -- "--mesh and --[a-z-]* do not go together" "$WORK/err" || fail "$bad: $(cat "$WORK/err")"
        [ ! -e ran ] || fail "$bad: the program ran"
    done
    expect_status 2 "$NEAP" run --mesh=1 -- true
    grep -q "option '--mesh' takes no value" "$WORK/err" || fail "--mesh=1: $(cat "$WORK/err")"
    # the summary: the program's counters, or the library's word on why not
    "$NEAP" run --mesh -- sh -c 'exec "$0" -c "x = [bytes(100) for _ in range(20000)]; del x"' \
        "${PY:-python3}" 2>"$WORK/err" || fail "neap run --mesh failed: $(cat "$WORK/err")"
    grep -q "^  meshing  .* a physical page (.* saved); .* unmeshed, [0-9.]* s spent$" "$WORK/err" ||
        grep -qi "warning.*mesh" "$WORK/err" || { cat "$WORK/err"; fail "the summary of --mesh has no meshing line"; }
    "$NEAP" run -- true 2>"$WORK/err" || fail "neap run failed: $(cat "$WORK/err")"
    ! grep -q "meshing" "$WORK/err" || { cat "$WORK/err"; fail "a meshing line without --mesh"; }
    # neap stats PID of records that say mesh 1, mesh 0, and nothing
    mkdir -p -m 0700 "$RECDIR"
    sleep 60 &
    live=$!
    trap 'kill $live 2>/dev/null; rm -f "$RECDIR/$live"; rm -rf "$WORK"' EXIT
    forge "$RECDIR/$live" $live program-a
    sed -i 's/^end$/mesh 1\nmesh_pages 1234\nmeshes 2000\nunmeshes 766\nmesh_ns 410000000\nend/' "$RECDIR/$live"
    expect_status 0 timeout -s KILL 20 "$NEAP" stats $live
    grep -qF "meshing           1234 pages share a physical page (4.8 MiB saved); 2000 meshes, 766 unmeshed, 0.41 s spent" out ||
        fail "neap stats shows no meshing line, or another: $(cat out)"
    sed -i 's/^mesh 1$/mesh 0/' "$RECDIR/$live"
    expect_status 0 timeout -s KILL 20 "$NEAP" stats $live
    ! grep -q "meshing" out || fail "a meshing line for a record with mesh 0: $(cat out)"
    forge "$RECDIR/$live" $live program-b
    expect_status 0 timeout -s KILL 20 "$NEAP" stats $live
    ! grep -q "meshing" out || fail "a meshing line for a record without mesh: $(cat out)"
    ;;
trace)
    [ -n "$PY" ] || { echo "SKIP: no python3"; exit 77; }
    expect_status 2 "$NEAP" run --frames 4 -- true
    grep -q "needs --trace" "$WORK/err" || fail "--frames without --trace: $(cat "$WORK/err")"
    expect_status 2 "$NEAP" run --trace /no/such/dir/t.trc -- true
    grep -q "cannot write" "$WORK/err" || fail "unwritable trace: $(cat "$WORK/err")"
    # exact: 200000 strs of 45 bytes or more each live at exit, made by PyUnicode_New
    "$NEAP" run -q --trace t.trc -- "$PY" -c '
keep = [str(i) * 9 for i in range(200000)]
import sys; sys.stdout.flush()' || fail "the traced program failed"
    "$NEAP" report t.trc >"$WORK/report" 2>"$WORK/err" || { cat "$WORK/err"; fail "neap report failed"; }
    grep -q "exit status 0\|exited with status 0" "$WORK/report" || { cat "$WORK/report"; fail "the trace does not give the exit status"; }
    grep -q "PyUnicode_New" "$WORK/report" || { cat "$WORK/report"; fail "no PyUnicode_New site"; }
    # sampled: the same program, an estimate
    "$NEAP" run -q --trace s.trc --sample 64K -- "$PY" -c 'keep = [str(i) * 9 for i in range(200000)]' \
        || fail "the sampled program failed"
    "$NEAP" report s.trc >"$WORK/report" 2>&1 || { cat "$WORK/report"; fail "neap report (sampled) failed"; }
    grep -q "sampled" "$WORK/report" || { cat "$WORK/report"; fail "the sampled trace is not called sampled"; }
    # the DWARF unwinder walks through code built without frame pointers
    "$NEAP" run -q --trace u.trc --unwind dwarf --sample 16K -- "$PY" -c 'keep = [str(i) * 9 for i in range(200000)]' \
        || fail "the program traced with --unwind dwarf failed"
    "$NEAP" report --by traceback u.trc >"$WORK/report" 2>&1 || { cat "$WORK/report"; fail "neap report (dwarf) failed"; }
    grep -q "main" "$WORK/report" || { cat "$WORK/report"; fail "--unwind dwarf stacks do not reach main"; }
    expect_status 2 "$NEAP" run --unwind sideways --trace x.trc -- true
    # auto, sampled: the same whole stacks where frame pointers stop at once
    "$NEAP" run -q --trace a.trc --sample 16K -- "$PY" -c 'keep = [str(i) * 9 for i in range(200000)]' \
        || fail "the program traced with --sample failed"
    "$NEAP" report --by traceback a.trc >"$WORK/report" 2>&1 || fail "neap report (auto) failed"
    grep -q "main" "$WORK/report" || { cat "$WORK/report"; fail "--unwind auto with --sample: stacks do not reach main"; }
    # killed: the trace is readable up to the last flush, with a warning
    "$NEAP" run -q --trace k.trc -- "$PY" -c '
import os, time
keep = [str(i) * 9 for i in range(200000)]
time.sleep(0.5)
os.kill(os.getpid(), 9)'
    [ $? -eq 137 ] || fail "the killed program did not die of SIGKILL"
    "$NEAP" report k.trc >"$WORK/report" 2>"$WORK/err" || { cat "$WORK/err"; fail "neap report of a killed program failed"; }
    grep -q "PyUnicode_New" "$WORK/report" || { cat "$WORK/report" "$WORK/err"; fail "the killed program's trace lost its records"; }
    grep -q "signal 9\|SIGKILL\|killed" "$WORK/report" || { cat "$WORK/report"; fail "the trace does not say the program was killed"; }
    # a child that execs writes its own file
    "$NEAP" run -q --trace c.trc -- sh -c '"$0" -c "x = 1"' "$PY" || fail "the parent failed"
    ls c.trc.* >/dev/null 2>&1 || fail "no trace of the child: $(ls)"
    ;;
tracethreads)
    PROG=${3:?trace_prog program}
    "$NEAP" run -q --trace t.trc -- "$PROG" threads || fail "trace_prog threads failed"
    "$NEAP" report --bytes t.trc >"$WORK/report" 2>&1 || { cat "$WORK/report"; fail "neap report failed"; }
    live=$(sed -n 's/^  at exit *\([0-9]*\) live.*/\1/p' "$WORK/report")
    [ -n "$live" ] || { cat "$WORK/report"; fail "no live bytes at exit in the report"; }
    [ "$live" -ge 10000000 ] || { cat "$WORK/report"; fail "$live bytes live at exit in the trace, 10^7 leaked"; }
    ;;
tracemesh)
    # a traced run with meshing reads as the same run without it: the same
    # live blocks and bytes at exit (the program's, and the few the C
    # library keeps), the same warnings (frees through meshed pages are
    # reported at the program's addresses, so none is of a block the trace
    # does not know that was not so without meshing)
    PROG=${3:?trace_prog program}
    for how in plain mesh; do
        flag=; [ $how = mesh ] && flag=--mesh
        "$NEAP" run $flag --trace $how.trc -- "$PROG" mesh >"$WORK/out.$how" 2>"$WORK/err" ||
            { cat "$WORK/err"; fail "$how: trace_prog mesh failed"; }
        [ $how = plain ] || grep -q "meshing .* [1-9][0-9]* meshes" "$WORK/err" ||
            { cat "$WORK/err"; fail "nothing was meshed"; }
        "$NEAP" report --bytes $how.trc >"$WORK/report.$how" 2>&1 || { cat "$WORK/report.$how"; fail "$how: neap report failed"; }
        grep "^  at exit \|^warning" "$WORK/report.$how" >"$WORK/sum.$how"
    done
    cmp -s "$WORK/out.plain" "$WORK/out.mesh" || fail "the program's own counts differ: $(cat "$WORK/out.plain") $(cat "$WORK/out.mesh")"
    diff "$WORK/sum.plain" "$WORK/sum.mesh" || { cat "$WORK/report.mesh"; fail "the report with meshing differs"; }
    want=$(cat "$WORK/out.mesh")
    live=$(sed -n 's/^  at exit *\([0-9]*\) live.*/\1/p' "$WORK/report.mesh")
    [ -n "$live" ] && [ "$live" -ge "$want" ] && [ "$live" -le $((want + 8192)) ] ||
        { cat "$WORK/report.mesh"; fail "$live bytes live at exit in the trace, the program left $want"; }
    ;;
tracerealloc)
    PROG=${3:?trace_prog program}
    "$NEAP" run -q --trace t.trc -- "$PROG" realloc || fail "trace_prog realloc failed"
    "$NEAP" report t.trc >"$WORK/report" 2>&1 || { cat "$WORK/report"; fail "neap report failed"; }
    ! grep -q "does not know" "$WORK/report" || { cat "$WORK/report"; fail "frees of blocks the trace does not know"; }
    ! grep -q "^warning" "$WORK/report" || { cat "$WORK/report"; fail "warnings in the report"; }
    ;;
traceenv)
    PROG=${3:?trace_prog program}
    LIB=$(dirname "$NEAP")/libneap.so
    [ -e "$LIB" ] || fail "no libneap.so beside $NEAP"
    # trace_check FILE PID WORD: FILE is the whole trace of process PID,
    # whose command has WORD, with no warning
    trace_check() {
        "$NEAP" report "$1" >"$WORK/report" 2>&1 || { cat "$WORK/report"; fail "neap report $1 failed"; }
        ! grep -q "^warning" "$WORK/report" || { cat "$WORK/report"; fail "$1: warnings"; }
        grep -q "^  process      pid $2," "$WORK/report" || { cat "$WORK/report"; fail "$1 is not the trace of pid $2"; }
        grep -q "^  command .*trace_prog $3" "$WORK/report" || { cat "$WORK/report"; fail "$1 is not the trace of trace_prog $3"; }
        grep -q "^  end          .*status 0\|^  end          clean end" "$WORK/report" || { cat "$WORK/report"; fail "$1 has no end"; }
    }
    for how in env run; do
        rm -f h.trc*
        if [ $how = env ]; then
            NEAP_TRACE="$WORK/h.trc" LD_PRELOAD="$LIB" "$PROG" spawn >pids 2>"$WORK/err"
        else
            "$NEAP" run -q --trace h.trc -- "$PROG" spawn >pids 2>"$WORK/err"
        fi || fail "$how: trace_prog spawn failed: $(cat "$WORK/err")"
        read -r parent leaf <pids
        trace_check h.trc "$parent" spawn
        [ -s "h.trc.$leaf" ] || fail "$how: no trace of the child that exec'd: $(ls)"
        trace_check "h.trc.$leaf" "$leaf" leaf
        # the forked child (without exec) writes none
        [ "$(ls h.trc* | wc -l)" -eq 2 ] || fail "$how: trace files $(ls h.trc*), expected h.trc and h.trc.$leaf"
    done
    # a path that cannot be made is said, its bytes escaped
    NEAP_TRACE=$'/no/such/dir/\e[31mx' LD_PRELOAD="$LIB" /bin/true 2>"$WORK/err"
    grep -q 'cannot create the trace file: /no/such/dir/\\x1b\[31mx' "$WORK/err" ||
        { cat -v "$WORK/err"; fail "NEAP_TRACE's path not in the warning, or not escaped"; }
    ! grep -q $'\e' "$WORK/err" || fail "an escape byte of NEAP_TRACE reached stderr raw"
    ;;
tracemark)
    PROG=${3:?mark_prog program}
    "$NEAP" run -q --trace m.trc -- "$PROG" phases 2>"$WORK/err" || fail "mark_prog phases failed: $(cat "$WORK/err")"
    # mrep WHEN: neap report --bytes m.trc --at WHEN into $WORK/report
    mrep() {
        "$NEAP" report --bytes --no-progress m.trc --at "$1" >"$WORK/report" 2>"$WORK/err" ||
            { cat "$WORK/report" "$WORK/err"; fail "neap report --at $1 failed"; }
    }
    # live_row TITLE FIGURES: the table under TITLE has a row "FIGURES ..."
    # (bytes blocks average; the site by its figures: its name needs symbols)
    live_row() {
        awk -v t="$1" 'index($0, t) { on = 1 } on && /^$/ { exit } on' "$WORK/report" |
            tr -s ' ' | grep -q "^ [0-9]* $2 " ||
            { cat "$WORK/report"; fail "no row '$2' under '$1'"; }
    }
    no_row() {
        ! awk -v t="$1" 'index($0, t) { on = 1 } on && /^$/ { exit } on' "$WORK/report" |
            tr -s ' ' | grep -q "^ [0-9]* $2 " || { cat "$WORK/report"; fail "a row '$2' under '$1'"; }
    }
    mrep mark:phase1
    grep -q "^  shown        mark 'phase1' at [0-9.]* s (mark 1 of 2): " "$WORK/report" || { cat "$WORK/report"; fail "no moment shown"; }
    live_row "Top sites live at mark 'phase1'" "1000000 100 10000"
    grep -q "phase_one" "$WORK/report" && { grep -q "1000000 *100 *10000  phase_one (mark_prog.c:" "$WORK/report" || fail "phase_one is not the site of the 100 blocks"; }
    live1=$(sed -n "s/^  shown .*: \([0-9]*\) live in .*/\1/p" "$WORK/report")
    mrep mark:2
    grep -q "^  shown        mark 'phase2' at [0-9.]* s (mark 2 of 2): " "$WORK/report" || { cat "$WORK/report"; fail "mark:2 is not phase2"; }
    live_row "Top sites live at mark 'phase2'" "100000 10 10000"
    no_row "Top sites live at mark 'phase2'" "1000000 100"
    live2=$(sed -n "s/^  shown .*: \([0-9]*\) live in .*/\1/p" "$WORK/report")
    # between the marks the program only freed 90 blocks of 10000 bytes
    [ -n "$live1" ] && [ -n "$live2" ] && [ $((live1 - live2)) -eq 900000 ] ||
        { cat "$WORK/report"; fail "live at the marks: $live1 and $live2, not 900000 apart"; }
    grep -Eq "^ +1 +[0-9.]+ s +$live1 +[0-9]+  phase1\$" "$WORK/report" || { cat "$WORK/report"; fail "the marks' table lacks phase1 with $live1 live"; }
    grep -Eq "^ +2 +[0-9.]+ s +$live2 +[0-9]+  phase2  <- shown\$" "$WORK/report" || { cat "$WORK/report"; fail "the marks' table lacks phase2 with $live2 live"; }
    mrep peak
    live_row "Top sites live at the peak" "3145728 1 3145728"
    live_row "Top sites live at the peak" "100000 10 10000"
    # the huge block (a mapping of its own) pins exactly its 768 pages
    live_row "Pinning at the peak" "3145728 3145728 1.0x 768 0 0"
    grep -q "^    .* keeps 768 pages (3145728) for 3145728 of live objects\$" "$WORK/report" || { cat "$WORK/report"; fail "the huge block's pinning is not said in words"; }
    mrep end
    live_row "Top sites live at exit" "100000 10 10000"
    no_row "Top sites live at exit" "3145728"
    for bad in mark:phase3 mark:3 1000s; do
        "$NEAP" report m.trc --at "$bad" >"$WORK/report" 2>"$WORK/err"
        [ $? -eq 2 ] || fail "--at $bad did not exit 2"
    done
    grep -q "past the end" "$WORK/err" || fail "no message for a time past the end: $(cat "$WORK/err")"
    ;;
markcmd)
    PROG=${3:?mark_prog program}
    mkfifo go || fail "mkfifo"
    # on any exit, the program is let go (a read-write open of a FIFO does
    # not block): never left waiting on a FIFO that is gone
    trap 'exec 3<>"$WORK/go" && echo go >&3; rm -rf "$WORK"' EXIT
    "$NEAP" run -q --trace w.trc -- "$PROG" wait "$WORK/ready" "$WORK/go" 2>"$WORK/prog.err" &
    runner=$!
    # the program writes its pid once its 50 blocks are made (at most 60 s)
    for _ in $(seq 600); do [ -s ready ] && break; sleep 0.1; done
    pid=$(cat ready) || fail "the program did not start: $(cat "$WORK/prog.err")"
    # its trace thread's note appears when it starts: neap mark waits for its answer
    for _ in $(seq 600); do [ -e "$RECDIR/$pid.trace" ] && break; sleep 0.1; done
    expect_status 0 "$NEAP" mark "$pid" "remote one" --timeout 60
    grep -q "^neap mark: marked 'remote one' in the trace of process $pid ($WORK/w.trc)\$" "$WORK/out" ||
        fail "no confirmation: $(cat "$WORK/out" "$WORK/err")"
    # when neap mark has returned, the mark is in the file already
    "$NEAP" report --bytes --no-progress w.trc --at "mark:remote one" >"$WORK/report" 2>"$WORK/err" ||
        { cat "$WORK/report" "$WORK/err"; fail "the mark is not in the trace while the program runs"; }
    grep -q "1000000 *50 *20000 " "$WORK/report" || { cat "$WORK/report"; fail "the 50 blocks are not live at the mark"; }
    # a second one, with the default label (the time of day)
    expect_status 0 "$NEAP" mark "$pid" --timeout 60
    grep -Eq "^neap mark: marked '[0-9]{2}:[0-9]{2}:[0-9]{2}' in the trace" "$WORK/out" || fail "the default label is not the time: $(cat "$WORK/out")"
    # neap run's own pid (the shell's $!): the program it runs is marked
    expect_status 0 "$NEAP" mark "$runner" via-run --timeout 60
    grep -q "^neap mark: $runner is neap run; marking the program it runs, pid $pid\$" "$WORK/err" ||
        fail "no word of the program marked for neap run's pid: $(cat "$WORK/err")"
    grep -q "^neap mark: marked 'via-run' in the trace of process $pid " "$WORK/out" ||
        fail "neap run's pid: the program was not marked: $(cat "$WORK/out" "$WORK/err")"
    echo go >go
    wait $runner || fail "the program failed: $(cat "$WORK/prog.err")"
    [ ! -e "$RECDIR/$pid.trace" ] || fail "the program's note $RECDIR/$pid.trace is left after its exit"
    "$NEAP" report --bytes --no-progress w.trc >"$WORK/report" 2>&1 || { cat "$WORK/report"; fail "neap report failed"; }
    grep -Eq "^ +1 +[0-9.]+ s +[0-9]+ +[0-9]+  remote one\$" "$WORK/report" || { cat "$WORK/report"; fail "the report does not list the mark"; }
    grep -Eq "^ +2 +[0-9.]+ s +[0-9]+ +[0-9]+  [0-9]{2}:[0-9]{2}:[0-9]{2}\$" "$WORK/report" || { cat "$WORK/report"; fail "the report does not list the second mark"; }
    grep -Eq "^ +3 +[0-9.]+ s +[0-9]+ +[0-9]+  via-run\$" "$WORK/report" || { cat "$WORK/report"; fail "the report does not list the mark made through neap run's pid"; }
    # the process has exited; a process that is not traced; no process
    expect_status 1 "$NEAP" mark "$pid" late
    grep -q "there is no process $pid\|is not traced by neap" "$WORK/err" || fail "no message for an exited process: $(cat "$WORK/err")"
    sleep 30 &
    sleeper=$!
    expect_status 1 "$NEAP" mark "$sleeper" x
    grep -q "process $sleeper is not traced by neap" "$WORK/err" || fail "no message for an untraced process: $(cat "$WORK/err")"
    kill $sleeper
    # a note left by a process killed while it traced: neap mark and the
    # list of neap stats remove it
    for how in mark stats; do
        true &
        dead=$!
        wait $dead
        printf 'neap-trace 1\npid %s\nfile x\n' $dead >"$RECDIR/$dead.trace"
        if [ $how = mark ]; then
            expect_status 1 "$NEAP" mark $dead x
            grep -q "process $dead is gone" "$WORK/err" || fail "no message for a dead pid's note: $(cat "$WORK/err")"
        else
            "$NEAP" stats >/dev/null || fail "neap stats failed"
        fi
        [ ! -e "$RECDIR/$dead.trace" ] || fail "neap $how left the note of dead process $dead"
    done
    # bad command lines
    expect_status 2 "$NEAP" mark
    expect_status 2 "$NEAP" mark abc
    expect_status 2 "$NEAP" mark 1 a b
    expect_status 2 "$NEAP" mark 1 x --timeout 0
    expect_status 2 "$NEAP" mark 1 "$(printf 'two\nlines')"
    expect_status 2 "$NEAP" mark 1 "$(head -c 1025 /dev/zero | tr '\0' x)"
    expect_status 0 "$NEAP" mark --help
    grep -q "^usage: neap mark PID" "$WORK/out" || fail "no usage"
    ;;
lastthread)
    PROG=${3:?last_thread program}
    # SIGKILL after 60 s: a process kept alive by the background thread
    # ignores SIGTERM (the thread blocks every signal)
    for mode in main fork; do
        rm -f done
        timeout -s KILL 60 "$NEAP" run -q -- "$PROG" $mode "$WORK/done" 2>"$WORK/err"
        got=$?
        [ "$got" -eq 0 ] || { cat "$WORK/err" >&2; fail "last_thread $mode exited with $got (137: hung and killed)"; }
        [ -s done ] || fail "last_thread $mode: the process did not end as exit(0) does (no atexit handler ran)"
    done
    # the summary, written after main's pthread_exit, still reads the RSS
    "$NEAP" run -- "$PROG" main "$WORK/done" 2>"$WORK/err" || fail "last_thread main failed: $(cat "$WORK/err")"
    grep -q "RSS  *[1-9]" "$WORK/err" || fail "the summary after pthread_exit has no RSS: $(grep RSS "$WORK/err")"
    "$NEAP" run -q -- "$PROG" name >names 2>"$WORK/err" || fail "last_thread name failed: $(cat "$WORK/err")"
    grep -qx "neap-background" names || fail "no thread named neap-background: $(tr '\n' ' ' <names)"
    ;;
filevalue)
    # a file-valued option followed by "--" or another option takes it as
    # its value: refused (2), with the reason, and nothing written
    for opt in --trace -o --output --lib; do
        for val in -- -q --quiet; do
            expect_status 2 "$NEAP" run $opt $val -- true
            grep -q "needs a file name, not '$val'" "$WORK/err" || fail "$opt $val: $(cat "$WORK/err")"
        done
    done
    for opt in --trace --output --lib; do
        expect_status 2 "$NEAP" run $opt=-x -- true
    done
    [ -z "$(ls -A | grep -vx "out\|err")" ] || fail "files written: $(ls -A)"
    # a name that starts with '-' can be given as ./-name
    expect_status 0 "$NEAP" run -o ./-summary -- true
    [ -s ./-summary ] || fail "-o ./-summary wrote nothing"
    ;;
parentdeath)
    # neap run killed by SIGKILL: its program goes too (the parent-death
    # signal), polled for up to 60 s
    "$NEAP" run -q -- sh -c 'echo $$ >pid; exec sleep 1000' &
    runner=$!
    for _ in $(seq 600); do [ -s pid ] && break; sleep 0.1; done
    pid=$(cat pid) || fail "the program did not start"
    # gone: no such process, or a zombie waiting for its new parent
    gone() { [ ! -e /proc/"$1" ] || [ "$(sed 's/.*) //; s/ .*//' /proc/"$1"/stat 2>/dev/null)" = Z ]; }
    gone "$pid" && fail "the program is not running"
    kill -KILL $runner
    wait $runner 2>/dev/null
    for _ in $(seq 600); do gone "$pid" && break; sleep 0.1; done
    gone "$pid" || { kill -KILL "$pid"; fail "the program outlived neap run killed by SIGKILL"; }
    ;;
statsrun)
    # neap stats given neap run's own pid ($!): the program it runs is shown,
    # and the run's other process on neap counted and named
    mkfifo fifo || fail "mkfifo"
    "$NEAP" run -q --publish 200 -- sh -c 'echo $$ >pid; sh -c "echo \$\$ >pid2; read x <fifo"' &
    runner=$!
    for _ in $(seq 600); do [ -s pid ] && [ -s pid2 ] && [ -e "$RECDIR/$(cat pid2)" ] && break; sleep 0.1; done
    pid=$(cat pid) && pid2=$(cat pid2) || fail "the program did not start"
    for _ in $(seq 600); do [ -e "$RECDIR/$pid" ] && break; sleep 0.1; done
    "$NEAP" stats $runner >"$WORK/stats" 2>&1
    got=$?
    echo x >fifo
    wait $runner || fail "the run failed"
    [ $got -eq 0 ] || { cat "$WORK/stats"; fail "neap stats $runner (neap run's pid) exited with $got"; }
    grep -q "is \`neap run\`; showing the program it runs, pid $pid\$" "$WORK/stats" || { cat "$WORK/stats"; fail "the run's program $pid is not shown"; }
    grep -q "statistics of pid $pid:" "$WORK/stats" || { cat "$WORK/stats"; fail "no statistics of $pid"; }
    grep -q "the run has 1 other process on neap: pid $pid2 " "$WORK/stats" ||
        { cat "$WORK/stats"; fail "the run's other process $pid2 is not named"; }
    ;;
tracefiles)
    # a launcher that starts Python twice: the summary names both processes'
    # own trace files, each with its neap report hint, once
    [ -n "$PY" ] || { echo "SKIP: no python3"; exit 77; }
    "$NEAP" run --trace t.trc -- sh -c '
for i in 1 2; do "$0" -c "import os; open(\"pid$i\", \"w\").write(str(os.getpid()))"; done' "$PY" \
        2>"$WORK/err" || { cat "$WORK/err"; fail "neap run failed"; }
    for i in 1 2; do
        pid=$(cat pid$i) || fail "python $i did not run"
        [ -s "t.trc.$pid" ] || fail "no trace of python $i: $(ls)"
        [ "$(grep -c "^    $WORK/t.trc.$pid  (pid $pid: .*python" "$WORK/err")" -eq 1 ] ||
            { cat "$WORK/err"; fail "the summary does not name t.trc.$pid once"; }
    done
    grep -q "other processes (read each with \`neap report FILE\`)" "$WORK/err" ||
        { cat "$WORK/err"; fail "no neap report hint for the other traces"; }
    grep -q "^  trace: $WORK/t.trc " "$WORK/err" || { cat "$WORK/err"; fail "the program's own trace is not named"; }
    ls "$RECDIR" 2>/dev/null | grep -q '\.traces$' && fail "a note of trace files was left in $RECDIR"
    "$NEAP" report "t.trc.$(cat pid1)" >/dev/null 2>&1 || fail "neap report of a listed trace failed"
    # without --trace nothing is noted or listed
    "$NEAP" run -- sh -c '"$0" -c 1' "$PY" 2>"$WORK/err" || fail "neap run failed"
    ! grep -q "other processes" "$WORK/err" || { cat "$WORK/err"; fail "traces listed without --trace"; }
    ;;
rundemo)
    # ./run-demo --help prints its help at once: nothing installed, configured
    # or built (the tools it would call are stand-ins here that say so);
    # its options are those of neap demo --help
    mkdir bin
    for tool in cmake ninja make apt-get sudo dpkg; do
        printf '#!/bin/sh\necho "%s $*" >>"%s/called"\nexit 1\n' "$tool" "$WORK" >bin/$tool
        chmod +x bin/$tool
    done
    for opt in --help -h; do
        PATH="$WORK/bin:$PATH" timeout 60 "$ROOT/run-demo" $opt >"$WORK/help" 2>"$WORK/err" ||
            { cat "$WORK/err"; fail "run-demo $opt failed"; }
        [ ! -e called ] || fail "run-demo $opt ran: $(cat called)"
        grep -q "^usage: ./run-demo" "$WORK/help" || { cat "$WORK/help"; fail "run-demo $opt: no usage"; }
    done
    # ./run-tests too: its help at once, an unknown argument refused, and
    # nothing installed or built either way
    PATH="$WORK/bin:$PATH" timeout 60 "$ROOT/run-tests" --help >"$WORK/help" 2>"$WORK/err" ||
        { cat "$WORK/err"; fail "run-tests --help failed"; }
    grep -q "^usage: ./run-tests" "$WORK/help" || { cat "$WORK/help"; fail "run-tests --help: no usage"; }
    PATH="$WORK/bin:$PATH" timeout 60 "$ROOT/run-tests" --bogus >/dev/null 2>"$WORK/err"
    [ $? -eq 2 ] || fail "run-tests --bogus did not exit 2"
    grep -q "unknown argument '--bogus'" "$WORK/err" || fail "run-tests --bogus: no message: $(cat "$WORK/err")"
    [ ! -e called ] || fail "run-tests --help ran: $(cat called)"
    for opt in --help -h; do
        PATH="$WORK/bin:$PATH" timeout 60 "$ROOT/run-demo" $opt >"$WORK/help" 2>"$WORK/err" ||
            { cat "$WORK/err"; fail "run-demo $opt failed"; }
    done
    "$NEAP" demo --help | grep -o '^  --[a-z-]*' | sort >"$WORK/want"
    grep -o '^  --[a-z-]*' "$WORK/help" | sort >"$WORK/got"
    cmp -s "$WORK/want" "$WORK/got" ||
        fail "run-demo --help options $(tr '\n' ' ' <"$WORK/got")differ from neap demo's $(tr '\n' ' ' <"$WORK/want")"
    ;;
depslock)
    # scripts/deps.sh: apt-get (a stand-in here) finds the package lists
    # locked by another one: neap_install waits and tries again, and passes
    # DPkg::Lock::Timeout to each call; a failure of another kind is not
    # tried again
    mkdir bin
    cat >bin/apt-get <<EOF
#!/bin/sh
echo "\$*" >>"$WORK/calls"
case "\$*" in
*update*)
    if [ ! -e "$WORK/locked-once" ]; then
        touch "$WORK/locked-once"
        echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1 (apt-get)" >&2
        exit 100
    fi ;;
*no-such-package*) echo "E: Unable to locate package no-such-package" >&2; exit 100 ;;
esac
exit 0
EOF
    printf '#!/bin/sh\nexec "$@"\n' >bin/sudo
    chmod +x bin/apt-get bin/sudo
    PATH="$WORK/bin:$PATH" timeout 60 bash -c '. "$0"/scripts/deps.sh && neap_install somepkg' "$ROOT" \
        2>"$WORK/err" || { cat "$WORK/err"; fail "neap_install did not wait for the lock"; }
    grep -q "waiting for it" "$WORK/err" || { cat "$WORK/err"; fail "no word about the wait"; }
    [ "$(grep -c 'update' calls)" -eq 2 ] && [ "$(grep -c 'install -y -qq somepkg' calls)" -eq 1 ] ||
        fail "apt-get calls: $(cat calls)"
    [ "$(grep -c -- '-o DPkg::Lock::Timeout=600' calls)" -eq 3 ] || fail "calls without the lock timeout: $(cat calls)"
    rm calls
    PATH="$WORK/bin:$PATH" timeout 60 bash -c '. "$0"/scripts/deps.sh && neap_install no-such-package' "$ROOT" \
        2>"$WORK/err" && fail "neap_install of a missing package succeeded"
    grep -q "Unable to locate package" "$WORK/err" || { cat "$WORK/err"; fail "apt-get's message was not shown"; }
    [ "$(grep -c 'install' calls)" -eq 1 ] || fail "a failure that is not a lock was tried again: $(cat calls)"
    ;;
*)
    fail "unknown case $CASE"
    ;;
esac
echo "PASS: $CASE"
