# newaliases -C DIR runs "postalias" for every alias_database entry; $PWD
# shows as TMP/case. -oA names another database. (Postfix fails with a
# relative -C DIR because its postalias runs in the queue directory; Rostfix
# resolves it where it was given, so that form is not recorded here.)
masked() { "$@" >"$RUN_TMP/masked"; st=$?; sed -e "/YP_LAST_MODIFIED/s/[0-9]\{10\}/NNNNNNNNNN/" -e "s/^[0-9]\{10\}$/NNNNNNNNNN/" "$RUN_TMP/masked"; return $st; }
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
