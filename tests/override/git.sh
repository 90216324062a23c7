#!/usr/bin/env bash
# git.sh LIB -- git on neap: init, add and commit ~2000 generated files,
# change some, commit, log --stat, diff, repack, fsck.  Names and dates are
# fixed, so the commit hashes of both runs are equal and compared too.
. "$(dirname "$0")/common.sh"
setup "$@"
need git awk

awk -v dir="$DATA/src" 'BEGIN {
    srand(4242);
    for (i = 0; i < 2000; i++) {
        d = dir "/d" (i % 40);
        f = d "/file" i ".txt";
        if (i < 40) system("mkdir -p " d);
        n = 5 + int(rand() * 60);
        for (j = 0; j < n; j++)
            printf "line %d of file %d: %d %s\n", j, i, int(rand() * 1e6),
                substr("the quick brown fox jumps over the lazy dog", 1 + int(rand() * 20)) > f;
        close(f);
    }
}'

export HOME=$WORK GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME="Neap Tester" GIT_AUTHOR_EMAIL="tester@neap.invalid"
export GIT_COMMITTER_NAME="Neap Tester" GIT_COMMITTER_EMAIL="tester@neap.invalid"
export GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z"

scenario() {
    cp -r "$DATA/src" repo
    cd repo
    "${RUN[@]}" git init -q -b main .
    "${RUN[@]}" git add -A
    "${RUN[@]}" git commit -q -m "initial import"
    # change every 20th file, delete a few, add a few
    for i in $(seq 0 20 1999); do echo "changed $i" >>"d$((i % 40))/file$i.txt"; done
    rm d1/file1.txt d2/file2.txt
    echo new >d0/new.txt
    "${RUN[@]}" git add -A
    "${RUN[@]}" git commit -q -m "second"
    "${RUN[@]}" git log --stat
    "${RUN[@]}" git diff --stat HEAD~1 HEAD
    "${RUN[@]}" git diff HEAD~1 HEAD -- d0 | sed -n 1,50p
    "${RUN[@]}" git repack -a -d -q
    "${RUN[@]}" git fsck --no-progress --full
    "${RUN[@]}" git log --numstat --format='%H %s' | sed -n 1,100p
    "${RUN[@]}" git grep -c "quick brown" HEAD | sed -n 1,20p
    "${RUN[@]}" git ls-files | wc -l
}
compare_runs
