# The pipe(8) command of the pipe cases (run as /bin/sh pipe.sh NAME ARGS...):
# writes its user, its other arguments and its standard input to
# @TMP@/vmail/pipe-NAME, which the runner shows in the tree and file sections.
name=$1
shift
{
    echo "user: $(id -un)"
    for a in "$@"; do
        printf 'argv: [%s]\n' "$a"
    done
    echo "stdin:"
    cat
} > "@TMP@/vmail/pipe-$name"
