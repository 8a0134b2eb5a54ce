# -i adds entries from stdin (duplicates warn and keep the old value,
# syntax warnings name "stdin"); -i -r replaces; -d deletes (exit 1 when
# the name is absent). cdb supports neither -i nor -d.
masked() { "$@" >"$RUN_TMP/masked"; st=$?; sed -e "/YP_LAST_MODIFIED/s/[0-9]\{10\}/NNNNNNNNNN/" -e "s/^[0-9]\{10\}$/NNNNNNNNNN/" "$RUN_TMP/masked"; return $st; }
run postalias -c . lmdb:aliases
run_in add postalias -c . -i lmdb:aliases
run masked postalias -c . -s lmdb:aliases
run_in replace postalias -c . -i -r lmdb:aliases
run postalias -c . -q root lmdb:aliases
run postalias -c . -d ROOT lmdb:aliases
run postalias -c . -d nothere lmdb:aliases
run masked postalias -c . -s lmdb:aliases
run postalias -c . cdb:aliases
run_in add postalias -c . -i cdb:aliases
run postalias -c . -d root cdb:aliases
run postalias -c . -s cdb:aliases
