# newaliases -C DIR runs "postalias" for every alias_database entry. DIR
# must be absolute ($PWD shows as TMP/case): with -C . postalias looks for
# ./main.cf in the queue directory and fails. -oA names another database.
masked() { "$@" >"$RUN_TMP/masked"; st=$?; sed -e "/YP_LAST_MODIFIED/s/[0-9]\{10\}/NNNNNNNNNN/" -e "s/^[0-9]\{10\}$/NNNNNNNNNN/" "$RUN_TMP/masked"; return $st; }
run newaliases -C .
run ls
run newaliases -C "$PWD"
run ls
run postalias -c . -q root lmdb:aliases
run postalias -c . -q postmaster cdb:aliases
run masked postalias -c . -s lmdb:aliases
cp aliases other
run newaliases -C "$PWD" -oAlmdb:"$PWD"/other
run ls
run postalias -c . -q root lmdb:other
run newaliases -C "$PWD" -oAlmdb:"$PWD"/nosuch
run sendmail -C "$PWD" -bi
