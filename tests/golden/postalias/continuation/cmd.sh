# aliases(5) continuation lines (leading whitespace), blank lines inside a
# continued entry, comment lines.
masked() { "$@" >"$RUN_TMP/masked"; st=$?; sed -e "/YP_LAST_MODIFIED/s/[0-9]\{10\}/NNNNNNNNNN/" -e "s/^[0-9]\{10\}$/NNNNNNNNNN/" "$RUN_TMP/masked"; return $st; }
run postalias -c . lmdb:aliases
run postalias -c . -q multi lmdb:aliases
run postalias -c . -q afterblank lmdb:aliases
run postalias -c . -q single lmdb:aliases
run postalias -c . -q last lmdb:aliases
run masked postalias -c . -s lmdb:aliases
