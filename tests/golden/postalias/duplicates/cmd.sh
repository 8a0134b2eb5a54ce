# Duplicate names: warning without line number, first wins; -r last wins;
# -w silent; -f keeps case (so "Dup" is a separate name).
masked() { "$@" >"$RUN_TMP/masked"; st=$?; sed -e "/YP_LAST_MODIFIED/s/[0-9]\{10\}/NNNNNNNNNN/" -e "s/^[0-9]\{10\}$/NNNNNNNNNN/" "$RUN_TMP/masked"; return $st; }
run postalias -c . lmdb:aliases
run postalias -c . -q dup lmdb:aliases
run postalias -c . -r lmdb:aliases
run postalias -c . -q dup lmdb:aliases
run postalias -c . -w lmdb:aliases
run postalias -c . -q dup lmdb:aliases
run postalias -c . -f lmdb:aliases
run masked postalias -c . -s lmdb:aliases
run postalias -c . cdb:aliases
run postalias -c . -q dup cdb:aliases
