# Run by nobody's .forward as "/bin/sh @ETC@/env.sh forward.nobody": the
# argument says which .forward file ran it. TZ is left out: local(8)
# passes it on (export_environment) only when it was in the environment
# postfix was started with, which is the caller's.
{
echo "== run from $1 ($# argument)"
env | grep -v '^TZ=' | sort
echo "id -un: $(id -un)"
echo "id -gn: $(id -gn)"
echo "id -Gn: $(id -Gn)"
echo "pwd: $(pwd)"
echo "umask: $(umask)"
} >> @TMP@/vmail/command-env
