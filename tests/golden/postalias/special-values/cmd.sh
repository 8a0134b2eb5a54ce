# Values postalias stores verbatim (delivery happens elsewhere):
# :include:, /file, |command, "|command with args", and lists of them.
masked() { "$@" >"$RUN_TMP/masked"; st=$?; sed -e "/YP_LAST_MODIFIED/s/[0-9]\{10\}/NNNNNNNNNN/" -e "s/^[0-9]\{10\}$/NNNNNNNNNN/" "$RUN_TMP/masked"; return $st; }
run postalias -c . lmdb:aliases
run postalias -c . -q inc lmdb:aliases
run postalias -c . -q file lmdb:aliases
run postalias -c . -q cmd lmdb:aliases
run postalias -c . -q cmdargs lmdb:aliases
run postalias -c . -q mixed lmdb:aliases
run masked postalias -c . -s lmdb:aliases
