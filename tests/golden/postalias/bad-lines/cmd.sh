# Lines postalias rejects: no colon, empty value, a non-local name (with a
# domain), an empty name. The warnings give file and line; the rest builds.
masked() { "$@" >"$RUN_TMP/masked"; st=$?; sed -e "/YP_LAST_MODIFIED/s/[0-9]\{10\}/NNNNNNNNNN/" -e "s/^[0-9]\{10\}$/NNNNNNNNNN/" "$RUN_TMP/masked"; return $st; }
run postalias -c . lmdb:aliases
run masked postalias -c . -s lmdb:aliases
